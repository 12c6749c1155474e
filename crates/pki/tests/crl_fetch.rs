//! The HTTP fetch driver against a real HTTP server on 127.0.0.1: a good
//! CRL is put in force; a server that is down, answers garbage, answers an
//! error status, answers too slowly or serves another CA's CRL is a
//! reported failure, never a panic, and verification follows the policy.
#![cfg(feature = "fetch")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ferrosim_pki::crl::fetch::{CrlFetcher, FetchOptions};
use ferrosim_pki::crl::issue::CrlRequest;
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::crl::{CrlError, CrlNumber, CrlScope, LoadOutcome};
use ferrosim_pki::{
    CertRole, Error, RevocationPolicy, StalePolicy, TestPki, TrustStore, verify_dp_chain,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server answers next.
#[derive(Clone)]
enum Answer {
    Body(&'static str, Vec<u8>),
    Silent,
}

/// A minimal HTTP/1.1 server answering every request with the current `Answer`.
async fn serve(answer: Arc<Mutex<Answer>>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                match answer {
                    Answer::Body(status, body) => {
                        let head = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/pkix-crl\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                    }
                    Answer::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (base, task)
}

fn crl_request(number: u128, entries: Vec<ferrosim_pki::crl::RevokedEntry>) -> CrlRequest {
    let now = SystemTime::now();
    CrlRequest {
        number: CrlNumber::new(number),
        this_update: now - Duration::from_secs(60),
        next_update: now + Duration::from_secs(7 * 86_400),
        entries,
        scope: CrlScope::default(),
    }
}

fn fetcher(pki: &TestPki, on_stale: StalePolicy) -> (TrustStore, CrlFetcher) {
    let mut trust = pki.trust_store().unwrap();
    trust.enable_revocation(RevocationPolicy {
        on_stale,
        fetch_distribution_points: true,
    });
    let options = FetchOptions {
        timeout: Duration::from_millis(500),
        max_bytes: 64 * 1024,
        ..FetchOptions::default()
    };
    let fetcher = CrlFetcher::new(trust.clone(), options).unwrap();
    (trust, fetcher)
}

/// Verifies DPauth "now" (the hierarchy is valid for years around the real clock).
fn dpauth(trust: &TrustStore, pki: &TestPki) -> Result<ferrosim_pki::VerifiedDp, Error> {
    verify_dp_chain(
        trust,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        SystemTime::now(),
    )
}

/// Moves the schedule on: everything tracked is due.
fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

#[tokio::test]
async fn distribution_points_are_fetched_and_failures_follow_the_policy() {
    let answer = Arc::new(Mutex::new(Answer::Body("200 OK", b"garbage".to_vec())));
    let (base, server) = serve(Arc::clone(&answer)).await;
    let options = ferrosim_pki::TestPkiOptions {
        crl_base_url: Some(base.clone()),
        ..ferrosim_pki::TestPkiOptions::default()
    };
    let pki = TestPki::generate(&options).unwrap();
    let (trust, fetcher) = fetcher(&pki, StalePolicy::Refuse);

    // Not fetched yet: refused, and the distribution point becomes wanted.
    assert!(matches!(
        dpauth(&trust, &pki),
        Err(Error::RevocationUnknown { .. })
    ));

    // Garbage.
    let reports = fetcher.fetch_due(SystemTime::now()).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].url, format!("{base}/ci.crl"));
    assert!(matches!(reports[0].result, Err(CrlError::Malformed(_))));
    assert!(dpauth(&trust, &pki).is_err());

    // An error status.
    *answer.lock().unwrap() = Answer::Body("404 Not Found", Vec::new());
    let reports = fetcher.fetch_due(later()).await;
    let message = reports[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("404"), "{message}");

    // Too big.
    *answer.lock().unwrap() = Answer::Body("200 OK", vec![0x30; 100 * 1024]);
    let reports = fetcher.fetch_due(later() + Duration::from_secs(3600)).await;
    let message = reports[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("larger than"), "{message}");

    // Too slow.
    *answer.lock().unwrap() = Answer::Silent;
    let reports = fetcher.fetch_due(later() + Duration::from_secs(7200)).await;
    let message = reports[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("timed out"), "{message}");

    // The EUM's CRL served where the CI's belongs.
    let wrong = pki
        .issue_crl(CrlIssuer::Eum, &crl_request(1, vec![]))
        .unwrap();
    *answer.lock().unwrap() = Answer::Body("200 OK", wrong.der().to_vec());
    let reports = fetcher
        .fetch_due(later() + Duration::from_secs(10_800))
        .await;
    assert!(matches!(reports[0].result, Err(CrlError::WrongIssuer(_))));
    assert!(dpauth(&trust, &pki).is_err());

    // The real CI CRL, revoking DPauth: in force through the shared trust store.
    let revoking = pki
        .issue_crl(
            CrlIssuer::Ci,
            &crl_request(
                2,
                vec![entry(
                    pki.dp_auth.certificate.serial_number().to_vec(),
                    SystemTime::now(),
                    None,
                )],
            ),
        )
        .unwrap();
    *answer.lock().unwrap() = Answer::Body("200 OK", revoking.der().to_vec());
    let reports = fetcher
        .fetch_due(later() + Duration::from_secs(14_400))
        .await;
    assert!(matches!(reports[0].result, Ok(LoadOutcome::Loaded { .. })));
    assert!(matches!(
        dpauth(&trust, &pki),
        Err(Error::Revoked {
            cert: CertRole::DpAuth,
            ..
        })
    ));
    verify_dp_chain(
        &trust,
        pki.dp_pb.certificate.der(),
        CertRole::DpPb,
        SystemTime::now(),
    )
    .unwrap();

    // The server goes down: the CRL in force stays in force.
    server.abort();
    let _ = server.await;
    let reports = fetcher
        .fetch_due(later() + Duration::from_secs(7 * 86_400))
        .await;
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].result, Err(CrlError::Fetch { .. })));
    assert!(matches!(dpauth(&trust, &pki), Err(Error::Revoked { .. })));
}

#[tokio::test]
async fn server_down_under_warn_policy_accepts_with_a_warning() {
    // A port that was bound and released: nothing listens there.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let options = ferrosim_pki::TestPkiOptions {
        crl_base_url: Some(format!("http://{closed}")),
        ..ferrosim_pki::TestPkiOptions::default()
    };
    let pki = TestPki::generate(&options).unwrap();
    let (trust, fetcher) = fetcher(&pki, StalePolicy::Warn);
    assert_eq!(dpauth(&trust, &pki).unwrap().revocation_warnings.len(), 1);
    let reports = fetcher.fetch_due(SystemTime::now()).await;
    assert_eq!(reports.len(), 1);
    let message = reports[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("cannot connect"), "{message}");
    let v = dpauth(&trust, &pki).unwrap();
    assert_eq!(v.revocation_warnings.len(), 1);
    assert!(
        v.revocation_warnings[0]
            .to_string()
            .contains("cannot connect"),
        "{}",
        v.revocation_warnings[0]
    );
}
