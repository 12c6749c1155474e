//! ES2+ with mutual TLS: an operator whose client has only a certificate
//! (no bearer token) is served; a certificate from an unknown CA, an expired
//! one, or another operator's is refused with an ES2+ `Failed` answer that
//! says why. ES9+ clients without a certificate, and bearer tokens, work as
//! before on the same server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ferrosim_server::client_auth::{ClientAnchor, OperatorClientAuth};
use ferrosim_server::sandbox::{OPERATOR, PROFILE_TYPE, tls_identity};
use ferrosim_server::{RunningServer, ServerOptions};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions, header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::{Value, json};

struct Ca {
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert_der: cert.der().to_vec(),
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate (with its key, as one PEM) issued by `ca`, valid
/// from `days_from`..`days_to` days relative to now.
fn client(ca: &Ca, name: &str, days_from: i64, days_to: i64) -> (Vec<u8>, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(days_from);
    params.not_after = now + time::Duration::days(days_to);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    (cert.der().to_vec(), pem)
}

async fn start(smdp: &TestSmdp, client_auth: Vec<OperatorClientAuth>) -> RunningServer {
    let mut options = ServerOptions::new(tls_identity(&smdp.pki));
    options.client_auth = client_auth;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ferrosim_server::start(listener, smdp.smdp.clone(), options)
        .await
        .unwrap()
}

fn http(smdp: &TestSmdp, identity_pem: Option<&str>) -> reqwest::Client {
    let ci = reqwest::Certificate::from_pem(smdp.ci_pem().as_bytes()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ci]);
    if let Some(pem) = identity_pem {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A downloadOrder as `requester`, with only the client's certificate.
async fn download_order(client: &reqwest::Client, port: u16, requester: &str) -> (u16, Value) {
    let mut h = header();
    h["functionRequesterIdentifier"] = json!(requester);
    let resp = client
        .post(format!(
            "https://localhost:{port}/gsma/rsp2/es2plus/downloadOrder"
        ))
        .header("X-Admin-Protocol", "gsma/rsp/v2.2.0")
        .json(&json!({"header": h, "profileType": PROFILE_TYPE}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn refusal(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 401, "{answer:?}");
    let status = &answer.1["header"]["functionExecutionStatus"];
    assert_eq!(status["status"], "Failed", "{answer:?}");
    status["statusCodeData"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_by_client_certificate() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let other = OperatorId::new("other-operator").unwrap();
    inventory::add_operator(
        &smdp.store,
        other.clone(),
        "Other".into(),
        None,
        &mut rand::rng(),
    )
    .await
    .unwrap();
    let ca_ours = ca("Operator CA");
    let ca_other = ca("Other operator CA");
    let ca_unknown = ca("Nobody's CA");
    let pinned_issuer = ca("Pinned certificate's issuer (not trusted)");
    let (pinned_der, pinned_pem) = client(&pinned_issuer, "pinned client", -1, 30);
    let ours = OperatorId::new(OPERATOR).unwrap();
    let server = start(
        &smdp,
        vec![
            OperatorClientAuth {
                operator: ours.clone(),
                anchor: ClientAnchor::Ca(ca_ours.cert_der.clone()),
            },
            OperatorClientAuth {
                operator: other.clone(),
                anchor: ClientAnchor::Ca(ca_other.cert_der.clone()),
            },
            OperatorClientAuth {
                operator: ours.clone(),
                anchor: ClientAnchor::Pinned(pinned_der),
            },
        ],
    )
    .await;
    let port = server.local_addr().port();

    // Only a certificate, from the operator's CA: served.
    let (_, good) = client(&ca_ours, "operator back office", -1, 30);
    let answer = download_order(&http(&smdp, Some(&good)), port, OPERATOR).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    assert_eq!(
        answer.1["header"]["functionExecutionStatus"]["status"], "Executed-Success",
        "{answer:?}"
    );
    assert!(answer.1["iccid"].is_string(), "{answer:?}");
    // A pinned certificate: served.
    let answer = download_order(&http(&smdp, Some(&pinned_pem)), port, OPERATOR).await;
    assert_eq!(answer.0, 200, "{answer:?}");

    // Unknown CA.
    let (_, stranger) = client(&ca_unknown, "stranger", -1, 30);
    let why = refusal(&download_order(&http(&smdp, Some(&stranger)), port, OPERATOR).await);
    assert!(
        why.contains("not issued by the CA of any operator"),
        "{why}"
    );
    // Expired, from the right CA.
    let (_, expired) = client(&ca_ours, "old back office", -30, -1);
    let why = refusal(&download_order(&http(&smdp, Some(&expired)), port, OPERATOR).await);
    assert!(why.contains("expired"), "{why}");
    // Another operator's certificate claiming to be us.
    let (_, theirs) = client(&ca_other, "other back office", -1, 30);
    let why = refusal(&download_order(&http(&smdp, Some(&theirs)), port, OPERATOR).await);
    assert!(why.contains("other-operator"), "{why}");
    // ...which is fine as itself.
    let answer = download_order(&http(&smdp, Some(&theirs)), port, other.as_str()).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    // Neither token nor certificate.
    let why = refusal(&download_order(&http(&smdp, None), port, OPERATOR).await);
    assert!(
        why.contains("missing bearer token or client certificate"),
        "{why}"
    );
    // A certificate but a garbage body: a clear ES2+ failure, no 500.
    let resp = http(&smdp, Some(&good))
        .post(format!(
            "https://localhost:{port}/gsma/rsp2/es2plus/downloadOrder"
        ))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status().as_u16(), 500);
    assert!(resp.text().await.unwrap().contains("Failed"));

    // Bearer tokens still work, with or without a certificate.
    let resp = http(&smdp, None)
        .post(format!(
            "https://localhost:{port}/gsma/rsp2/es2plus/downloadOrder"
        ))
        .bearer_auth(&smdp.token)
        .json(&json!({"header": header(), "profileType": PROFILE_TYPE}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // ES9+ devices without a certificate connect and get ES9+ answers.
    let resp = http(&smdp, None)
        .post(format!(
            "https://localhost:{port}/gsma/rsp2/es9plus/initiateAuthentication"
        ))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("Failed"));
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_is_not_one_is_a_configuration_error() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let mut options = ServerOptions::new(tls_identity(&smdp.pki));
    options.client_auth = vec![OperatorClientAuth {
        operator: OperatorId::new(OPERATOR).unwrap(),
        anchor: ClientAnchor::Ca(b"garbage".to_vec()),
    }];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = ferrosim_server::start(listener, smdp.smdp.clone(), options)
        .await
        .expect_err("a garbage CA was accepted");
    assert!(err.to_string().contains(OPERATOR), "{err}");
}
