//! Indirect profile download: the LPA flow of a virtual eUICC whose ES9+
//! calls travel as ESipa messages to the eIM, which relays them to the
//! SM-DP+ — over HTTPS (any SM-DP+) and in process (its own) — until the
//! order is `installed`, with the IPA's leg in process (both bindings'
//! answers checked) and over loopback HTTPS on the JSON binding of a
//! running server; and the relay's refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::SystemTime;

use ferrosim_asn1::esipa::read_eim_message;
use ferrosim_asn1::sgp32;
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_crypto::SoftwareKey;
use ferrosim_eim::relay::{Es9Relay, RelayFunction};
use ferrosim_eim::{Eim, EimConfig, EimId, EsipaReply, MemEimStore, Timestamp};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{Consent, DownloadRequest, download_profile};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::{Es9Client, Es9ClientError, Es9Function};
use ferrosim_lpa::{ActivationCode, Es10, Es10Options, SmdpAddress};
use ferrosim_saip::Iccid;
use ferrosim_server::relay::SmdpRelay;
use ferrosim_server::sandbox::tls_identity;
use ferrosim_server::{ServerOptions, esipa};
use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_store::SqlStore;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use serde_json::Value;

/// An LPA's ES9+ client whose calls go through the eIM as an IPA in
/// indirect mode sends them: each request becomes the ESipa message
/// (`BF39`, `BF3B`, `BF3A`, `BF41`, `BF3D`) the eIM relays, and the eIM's
/// answer is read back (its DER must be a well-formed
/// `EsipaMessageFromEimToIpa`; the ES9+ values come from the JSON binding's
/// members).
struct ViaEim<R> {
    eim: Eim<MemEimStore>,
    relay: R,
}

fn b64(value: &Value, name: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(
            value[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {value}")),
        )
        .unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The ESipa request (DER) an IPA in indirect mode sends for the ES9+
/// request `request` of function `name`.
fn esipa_request(name: &str, request: &Value) -> Vec<u8> {
    match name {
        "initiateAuthentication" => {
            let mut v = tlv(0x81, &b64(request, "euiccChallenge"));
            v.extend(tlv(
                0x83,
                request["smdpAddress"].as_str().unwrap().as_bytes(),
            ));
            v.extend(b64(request, "euiccInfo1"));
            tlv(0xBF39, &v)
        }
        "authenticateClient" => {
            let mut v = tlv(0x80, &hex(request["transactionId"].as_str().unwrap()));
            v.extend(b64(request, "authenticateServerResponse"));
            tlv(0xBF3B, &v)
        }
        "getBoundProfilePackage" => {
            let mut v = tlv(0x80, &hex(request["transactionId"].as_str().unwrap()));
            v.extend(b64(request, "prepareDownloadResponse"));
            tlv(0xBF3A, &v)
        }
        "cancelSession" => {
            let mut v = tlv(0x80, &hex(request["transactionId"].as_str().unwrap()));
            let answer = b64(request, "cancelSessionResponse");
            v.extend(tlv(0xA1, Tlv::parse_exact(&answer).unwrap().value));
            tlv(0xBF41, &v)
        }
        "handleNotification" => tlv(0xBF3D, &tlv(0xA0, &b64(request, "pendingNotification"))),
        other => panic!("{other}"),
    }
}

impl<R: Es9Relay> Es9Client for ViaEim<R> {
    async fn call<F: Es9Function>(
        &self,
        _address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let request = serde_json::to_value(request).unwrap();
        let der = esipa_request(F::NAME, &request);
        match self
            .eim
            .handle(&der, &self.relay, Timestamp::now())
            .await
            .unwrap()
        {
            EsipaReply::Relayed { answer, .. } => {
                let message = read_eim_message(answer.der.as_ref().unwrap(), None)
                    .unwrap()
                    .message;
                let failed = answer.json.header.function_execution_status.status == "Failed";
                let ok =
                    matches!(
                    message,
                    sgp32::EsipaMessageFromEimToIpa::initiateAuthenticationResponseEsipa(
                        sgp32::InitiateAuthenticationResponseEsipa::initiateAuthenticationOkEsipa(_)
                    ) | sgp32::EsipaMessageFromEimToIpa::authenticateClientResponseEsipa(
                        sgp32::AuthenticateClientResponseEsipa::authenticateClientOkDPEsipa(_)
                    ) | sgp32::EsipaMessageFromEimToIpa::getBoundProfilePackageResponseEsipa(
                        sgp32::GetBoundProfilePackageResponseEsipa::getBoundProfilePackageOkEsipa(_)
                    ) | sgp32::EsipaMessageFromEimToIpa::cancelSessionResponseEsipa(
                        sgp32::CancelSessionResponseEsipa::cancelSessionOk(_)
                    )
                );
                assert_eq!(ok, !failed, "{}: DER and JSON answers agree", F::NAME);
                F::decode(200, &serde_json::to_vec(&answer.json).unwrap())
            }
            EsipaReply::NoContent => F::decode(204, b""),
            other => panic!("{}: {other:?}", F::NAME),
        }
    }
}

fn eim(smdp: &TestSmdp) -> Eim<MemEimStore> {
    Eim::new(
        MemEimStore::new(),
        EimConfig {
            eim_id: EimId::new("eim.relay.test").unwrap(),
            key: Arc::new(SoftwareKey::generate().unwrap()),
            trust: smdp.pki.trust_store().unwrap(),
        },
    )
}

async fn indirect_download(smdp: &TestSmdp, es9: &impl Es9Client, n: usize) {
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let eid = smdp.pki.eids()[n].to_string();
    let identity = EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap();
    let mut card = VirtualEuicc::new(identity, EuiccState::default());
    let ac =
        ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(&matching_id)).unwrap();
    let outcome = {
        let mut es10 = Es10::open(
            |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
            &Es10Options::default(),
        )
        .unwrap();
        let outcome = download_profile(&mut es10, es9, &DownloadRequest::new(&ac, None), |_| {
            Consent::Accept
        })
        .await
        .unwrap();
        let _ = es10.close();
        outcome
    };
    assert_eq!(outcome.iccid, iccid);
    assert!(
        outcome.result_delivered,
        "the installation result reached the SM-DP+ through the eIM"
    );
    let state = smdp
        .store
        .profile(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, OrderState::Installed);
}

#[tokio::test]
async fn an_indirect_download_is_relayed_over_https_and_in_process() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 2,
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let trust = TlsTrust::Roots(TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap());
    let https = HttpsEs9Client::new(&HttpsOptions::new(trust)).unwrap();
    let remote = ViaEim {
        eim: eim(&smdp),
        relay: SmdpRelay::<SqlStore>::new(None, Some(https)),
    };
    indirect_download(&smdp, &remote, 0).await;
    let local = ViaEim {
        eim: eim(&smdp),
        relay: SmdpRelay::new(Some(smdp.smdp.clone()), None),
    };
    indirect_download(&smdp, &local, 1).await;
}

#[tokio::test]
async fn relayed_steps_of_unknown_sessions_and_unreachable_smdps_get_their_error_codes() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let eim = eim(&smdp);
    let relay = SmdpRelay::<SqlStore>::new(None, None);
    // A step of a session the eIM never opened: invalidTransactionId.
    for (tag, answer_tag, error_tag, code) in
        [(0xBF3B, 0xBF38, 0x82, 10), (0xBF3A, 0xBF21, 0x81, 95)]
    {
        let mut v = tlv(0x80, &[1, 2, 3, 4]);
        // The eUICC's error alternative [1] {transactionId [0], code}.
        let error = [tlv(0x80, &[1, 2, 3, 4]), tlv(0x02, &[0x01])].concat();
        v.extend(tlv(answer_tag, &tlv(0xA1, &error)));
        let reply = eim
            .handle(&tlv(tag, &v), &relay, Timestamp::now())
            .await
            .unwrap();
        let EsipaReply::Relayed { answer, .. } = reply else {
            panic!("{reply:?}");
        };
        let der = answer.der.unwrap();
        read_eim_message(&der, None).unwrap();
        let inner = Tlv::parse_exact(Tlv::parse_exact(&der).unwrap().value).unwrap();
        assert_eq!(inner.tag, error_tag, "the error alternative");
        assert_eq!(inner.value, [code]);
        assert_eq!(
            answer.json.header.function_execution_status.status,
            "Failed"
        );
    }
    // initiateAuthentication to an SM-DP+ nobody relays to: undefinedError.
    let mut v = tlv(0x81, &[7; 16]);
    v.extend(tlv(0x83, b"smdp.nowhere.example"));
    let key_ids = tlv(0x04, &[0x11; 20]);
    let info1 = [
        tlv(0x82, &[2, 2, 0]),
        tlv(0xA9, &key_ids),
        tlv(0xAA, &key_ids),
    ]
    .concat();
    v.extend(tlv(0xBF20, &info1));
    let reply = eim
        .handle(&tlv(0xBF39, &v), &relay, Timestamp::now())
        .await
        .unwrap();
    let EsipaReply::Relayed { answer, .. } = reply else {
        panic!("{reply:?}");
    };
    let der = answer.der.unwrap();
    assert!(matches!(
        read_eim_message(&der, None).unwrap().message,
        sgp32::EsipaMessageFromEimToIpa::initiateAuthenticationResponseEsipa(
            sgp32::InitiateAuthenticationResponseEsipa::initiateAuthenticationErrorEsipa(_)
        )
    ));
    // Without an address anywhere: invalidDpAddress.
    let reply = eim
        .handle(&tlv(0xBF39, &tlv(0x81, &[7; 16])), &relay, Timestamp::now())
        .await
        .unwrap();
    let EsipaReply::Relayed { answer, .. } = reply else {
        panic!("{reply:?}");
    };
    let der = answer.der.unwrap();
    let inner = Tlv::parse_exact(Tlv::parse_exact(&der).unwrap().value).unwrap();
    assert_eq!((inner.tag, inner.value), (0x81, &[1u8][..]));
    assert_eq!(
        RelayFunction::from_tag(0xBF39),
        Some(RelayFunction::InitiateAuthentication)
    );
}

/// An IPA's ES9+ client in indirect mode over the network: each ES9+
/// request travels to the eIM of a running server on the ESipa JSON binding
/// (`POST /gsma/rsp2/esipa/<function>`, the ES9+ members as ESipa carries
/// them), and the eIM's answer is read as the ES9+ answer.
struct ViaEimOverHttps {
    http: reqwest::Client,
    base: String,
}

impl Es9Client for ViaEimOverHttps {
    async fn call<F: Es9Function>(
        &self,
        _address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let response = self
            .http
            .post(format!("{}/gsma/rsp2/esipa/{}", self.base, F::NAME))
            .header("User-Agent", "field-ipa/3.1")
            .json(request)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        F::decode(status, &body)
    }
}

/// The eIM served by a second server over loopback HTTPS (ESipa JSON
/// binding), relaying to the SM-DP+ of `smdp`: in process (the instance's
/// own SM-DP+) and over HTTPS (another SM-DP+); each download ends with the
/// order `installed`.
#[tokio::test]
async fn an_indirect_download_through_esipa_over_https_ends_installed() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 2,
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let ci = reqwest::Certificate::from_pem(smdp.ci_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ci])
        .build()
        .unwrap();
    let trust = TlsTrust::Roots(TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap());
    let relays = [
        SmdpRelay::<SqlStore>::new(
            None,
            Some(HttpsEs9Client::new(&HttpsOptions::new(trust)).unwrap()),
        ),
        SmdpRelay::new(Some(smdp.smdp.clone()), None),
    ];
    for (n, relay) in relays.into_iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = ferrosim_server::start_with(
            listener,
            smdp.smdp.clone(),
            ServerOptions::new(tls_identity(&smdp.pki)),
            esipa::routes(eim(&smdp), relay),
        )
        .await
        .unwrap();
        let ipa = ViaEimOverHttps {
            http: http.clone(),
            base: format!("https://localhost:{port}"),
        };
        indirect_download(&smdp, &ipa, n).await;
        server.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
