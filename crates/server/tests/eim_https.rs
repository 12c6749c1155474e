//! The eIM in the server over loopback HTTPS: both ESipa bindings driven by
//! a device built from the eUICC-side helpers of `ferrosim-eim`'s tests,
//! the REST API with its tokens and OpenAPI document, and garbage fed to
//! every entry point.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../../eim/tests/common/mod.rs"]
mod common;
mod eim_server;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrosim_asn1::esipa::{Sgp32Version, read_eim_message};
use ferrosim_asn1::sgp32;
use ferrosim_eim::Timestamp;
use ferrosim_server::api::auth::{MemTokenStore, Scope, new_token};
use ferrosim_server::{api, esipa};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use common::Device;
use eim_server::EimServer;

/// The eIM of [`EimServer`] with an API token of each scope and a revoked one.
struct Lab {
    eim: EimServer,
    read_only: String,
    operator: String,
    admin: String,
    revoked: String,
}

impl std::ops::Deref for Lab {
    type Target = EimServer;
    fn deref(&self) -> &EimServer {
        &self.eim
    }
}

impl Lab {
    async fn start() -> Self {
        let tokens = MemTokenStore::new();
        let mut rng = rand::rng();
        let mut token = |scope| {
            let (text, t) = new_token("test", scope, &mut rng, Timestamp(1));
            tokens.insert(t);
            text
        };
        let read_only = token(Scope::ReadOnly);
        let operator = token(Scope::Operator);
        let admin = token(Scope::Admin);
        let (revoked, t) = new_token("old", Scope::Admin, &mut rng, Timestamp(1));
        let revoked_id = t.id.clone();
        tokens.insert(t);
        tokens.revoke(&revoked_id, Timestamp(2));
        let eim = EimServer::start(3, common::EIM_ID, tokens, api::openapi_route()).await;
        Self {
            eim,
            read_only,
            operator,
            admin,
            revoked,
        }
    }

    async fn raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .header("User-Agent", "acme-ipa/0.1")
            .header("X-Admin-Protocol", "gsma/rsp/v9.9.9")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    async fn asn1(&self, der: &[u8]) -> (u16, Vec<u8>) {
        self.raw("/gsma/rsp2/asn1", esipa::ASN1_CONTENT_TYPE, der.to_vec())
            .await
    }

    async fn json(&self, function: &str, body: &Value) -> (u16, Value) {
        let (status, bytes) = self
            .raw(
                &format!("/gsma/rsp2/esipa/{function}"),
                "application/json",
                serde_json::to_vec(body).unwrap(),
            )
            .await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Associates eUICC `n` through the REST API.
    async fn associate(&self, n: usize) -> Device {
        let issued = &self.pki.euiccs[n];
        let eid = issued.certificate.eid().unwrap();
        let (status, body) = self
            .rest(
                "POST",
                "/api/v1/eim/devices",
                Some(&self.operator),
                Some(self.association(n)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["resultsAre"], "verified");
        Device {
            eid,
            key: issued.signing_key().unwrap(),
            euicc_version: Sgp32Version::V1_2,
            ipa_version: Sgp32Version::V1_2,
            token: Some(0x42),
            last_counter: 10,
            seq: 0,
            eim_key: self.eim_key.clone(),
        }
    }

    async fn queue(&self, eid: &str, operation: Value) -> Value {
        let (status, body) = self
            .rest(
                "POST",
                &format!("/api/v1/eim/devices/{eid}/queue"),
                Some(&self.operator),
                Some(operation),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

fn the_five_operations(iccid: &str) -> Vec<Value> {
    vec![
        json!({"operation": "enable", "iccid": iccid, "rollback": true}),
        json!({"operation": "disable", "iccid": iccid}),
        json!({"operation": "delete", "iccid": iccid}),
        json!({"operation": "list-profiles"}),
        json!({"operation": "set-fallback", "iccid": iccid}),
    ]
}

/// Every answer a field IPA reads is a well-formed EsipaMessageFromEimToIpa.
fn eim_message(body: &[u8]) -> sgp32::EsipaMessageFromEimToIpa {
    read_eim_message(body, None)
        .unwrap_or_else(|e| panic!("not an EsipaMessageFromEimToIpa ({e}): {body:02x?}"))
        .message
}

#[tokio::test]
async fn packages_run_through_both_bindings_and_results_are_verified() {
    let lab = Lab::start().await;
    let iccid = common::iccid(1).as_str().to_owned();
    for binding in ["asn1", "json"] {
        let n = if binding == "asn1" { 0 } else { 1 };
        let mut device = lab.associate(n).await;
        let eid = device.eid.digits();
        for op in the_five_operations(&iccid) {
            lab.queue(&eid, op).await;
        }
        for _ in 0..5 {
            let package = match binding {
                "asn1" => {
                    let (status, body) = lab.asn1(&device.get_eim_package()).await;
                    assert_eq!(status, 200);
                    common::package_of(&body)
                }
                _ => {
                    let (status, body) = lab.json("getEimPackage", &json!({"eidValue": eid})).await;
                    assert_eq!(status, 200);
                    assert_eq!(
                        body["header"]["functionExecutionStatus"]["status"],
                        "Executed-Success"
                    );
                    STANDARD
                        .decode(body["euiccPackageRequest"].as_str().expect("a package"))
                        .unwrap()
                }
            };
            let ran = device.run(&package);
            match binding {
                "asn1" => {
                    let (status, body) = lab.asn1(&device.provide(&ran.result)).await;
                    assert_eq!(status, 200);
                    match eim_message(&body) {
                        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
                            sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(acks),
                        ) => assert_eq!(acks.0.len(), 1, "the stored result is acknowledged"),
                        other => panic!("{other:?}"),
                    }
                }
                _ => {
                    let (status, body) = lab
                        .json(
                            "provideEimPackageResult",
                            &json!({"eidValue": eid, "eimPackageResult": STANDARD.encode(&ran.result)}),
                        )
                        .await;
                    assert_eq!(status, 200);
                    assert!(body["eimAcknowledgements"].is_string(), "{body}");
                }
            }
        }
        // Nothing left: noEimPackageAvailable.
        let (_, body) = lab.asn1(&device.get_eim_package()).await;
        assert!(matches!(
            eim_message(&body),
            sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                sgp32::GetEimPackageResponse::eimPackageError(_)
            )
        ));
        let (status, results) = lab
            .rest(
                "GET",
                &format!("/api/v1/eim/devices/{eid}/results"),
                Some(&lab.read_only),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), 5, "{binding}: every result stored once");
        assert!(
            results
                .iter()
                .all(|r| r["trust"] == "verified" && r["outcome"]["outcome"] == "executed")
        );
        let (_, device_view) = lab
            .rest(
                "GET",
                &format!("/api/v1/eim/devices/{eid}"),
                Some(&lab.read_only),
                None,
            )
            .await;
        assert_eq!(device_view["queue"].as_array().unwrap().len(), 0);
        assert_eq!(device_view["counter"], 15);
        let profiles = device_view["profiles"]["profiles"].as_array().unwrap();
        assert!(
            profiles.iter().any(|p| p["enabled"] == true)
                && profiles
                    .iter()
                    .any(|p| p["fallback"] == true && p["iccid"] == iccid.as_str()),
            "the listed profiles and the fallback attribute: {device_view}"
        );
    }
}

#[tokio::test]
async fn emulated_devices_are_marked_by_admins_and_shown_unsigned() {
    let lab = Lab::start().await;
    let device = lab.associate(2).await;
    let path = format!("/api/v1/eim/devices/{}/emulated", device.eid.digits());
    let (status, body) = lab
        .rest(
            "PUT",
            &path,
            Some(&lab.operator),
            Some(json!({"emulated": true})),
        )
        .await;
    assert_eq!(status, 403, "an operator may not mark a device: {body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = lab
        .rest(
            "PUT",
            &path,
            Some(&lab.admin),
            Some(json!({"emulated": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emulated"], true);
    assert_eq!(body["resultsAre"], "unsigned");
}

/// method, path, token, body, expected HTTP status, expected error code.
type RestCase<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    u16,
    &'a str,
);

#[tokio::test]
async fn the_rest_api_refuses_what_it_must_with_clear_json_errors() {
    let lab = Lab::start().await;
    let device = lab.associate(0).await;
    let eid = device.eid.digits();
    let queue = format!("/api/v1/eim/devices/{eid}/queue");
    let missing_item = format!("{queue}/77");
    let other = lab.pki.euiccs[1].certificate.eid().unwrap().digits();
    let other_path = format!("/api/v1/eim/devices/{other}");
    let bad_item = format!("{queue}/abc");
    let cases: Vec<RestCase<'_>> = vec![
        (
            "GET",
            "/api/v1/eim/devices",
            None,
            None,
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/api/v1/eim/devices",
            Some("fsk_nonsense"),
            None,
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/api/v1/eim/devices",
            Some("Basic abc"),
            None,
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/api/v1/eim/devices",
            Some(&lab.revoked),
            None,
            401,
            "unauthorized",
        ),
        (
            "POST",
            &queue,
            Some(&lab.read_only),
            Some(json!({"operation": "list-profiles"})),
            403,
            "forbidden",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "enable"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "list-profiles", "x": 1})),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "explode"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "enable", "iccid": "12"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "delete", "iccid": "89440000000000000012"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/eim/devices",
            Some(&lab.operator),
            Some(
                json!({"eid": "89049032123451234512345678901234", "eumCertificate": "AAAA", "euiccCertificate": "AAAA"}),
            ),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!({"operation": "download", "activationCode": "nope"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            &queue,
            Some(&lab.operator),
            Some(json!([1, 2])),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/eim/devices",
            Some(&lab.operator),
            Some(
                json!({"eid": eid, "eumCertificate": "x", "euiccCertificate": "y", "colour": "red"}),
            ),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/eim/devices",
            Some(&lab.operator),
            Some(json!({"eid": other, "eumCertificate": "AAAA", "euiccCertificate": "AAAA"})),
            422,
            "refused",
        ),
        (
            "POST",
            "/api/v1/eim/devices",
            Some(&lab.operator),
            Some(json!({"eid": eid, "eumCertificate": "AAAA", "euiccCertificate": "AAAA"})),
            409,
            "conflict",
        ),
        (
            "GET",
            &other_path,
            Some(&lab.read_only),
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/eim/devices/123",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices?limit=0",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices?colour=red",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices/89049032000000000000000000000000",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices?after=123",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices?after=89049032123451234512345678901234",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/eim/devices/8904903212345123451234567890123x/queue",
            Some(&lab.operator),
            Some(json!({"operation": "list-profiles"})),
            400,
            "bad_request",
        ),
        (
            "DELETE",
            "/api/v1/eim/devices/123/queue/1",
            Some(&lab.operator),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices/123/results",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices/%00/notifications",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/eim/devices/89049032123451234512345678901234/sanitize",
            Some(&lab.read_only),
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/eim/devices/not-an-eid/release",
            Some(&lab.operator),
            None,
            400,
            "bad_request",
        ),
        (
            "DELETE",
            &missing_item,
            Some(&lab.operator),
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            &bad_item,
            Some(&lab.operator),
            None,
            400,
            "bad_request",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got, answer) = lab.rest(method, path, token, body.clone()).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{method} {path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A body that is not JSON, and one without the JSON content type.
    for (content_type, body, status) in [
        ("application/json", "{\"operation\":", 400),
        ("application/json", "\u{0}\u{1}", 400),
        ("text/plain", "{\"operation\": \"list-profiles\"}", 415),
    ] {
        let response = lab
            .http
            .post(format!("{}{queue}", lab.base))
            .bearer_auth(&lab.operator)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{content_type} {body:?}"
        );
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"]["message"].is_string());
    }
    // The device is unchanged by all of it.
    let (_, view) = lab
        .rest(
            "GET",
            &format!("/api/v1/eim/devices/{eid}"),
            Some(&lab.read_only),
            None,
        )
        .await;
    assert_eq!(view["queue"].as_array().unwrap().len(), 0);
    assert_eq!(view["counter"], 10);
}

#[tokio::test]
async fn the_openapi_document_describes_the_eim_api() {
    let lab = Lab::start().await;
    let (status, doc) = lab.rest("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/eim/devices",
        "/api/v1/eim/devices/{eid}",
        "/api/v1/eim/devices/{eid}/queue",
        "/api/v1/eim/devices/{eid}/queue/{item}",
        "/api/v1/eim/devices/{eid}/results",
        "/api/v1/eim/devices/{eid}/emulated",
        "/api/v1/eim/devices/{eid}/sanitize",
        "/api/v1/eim/devices/{eid}/release",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["SanitizeReportView"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_token"].is_object());
    assert!(doc["components"]["schemas"]["QueueRequest"].is_object());
}

#[tokio::test]
async fn garbage_gets_a_well_formed_esipa_answer_on_both_bindings() {
    let lab = Lab::start().await;
    let device = lab.associate(0).await;
    let good = device.get_eim_package();
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0xBF],
        vec![0xBF, 0x4F],
        vec![0xBF, 0x4F, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
        good[..good.len() - 3].to_vec(),
        [good.clone(), vec![0x00]].concat(),
        vec![0xBF, 0x4F, 0x03, 0x5A, 0x01, 0x00],
        vec![0xBF, 0x50, 0x02, 0x05, 0x00],
        vec![0xBF, 0x39, 0x02, 0x81, 0x00],
        vec![0xBF, 0x3B, 0x00],
        vec![0xBF, 0x3A, 0x03, 0x80, 0x01, 0x01],
        vec![0xBF, 0x41, 0x00],
        vec![0xBF, 0x4E, 0x00],
        vec![0x30, 0x00],
        b"{\"eidValue\": \"89\"}".to_vec(),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(32);
    for _ in 0..40 {
        let len = rng.random_range(0..64);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && !b.is_empty() {
            b[0] = 0xBF;
        }
        bodies.push(b);
    }
    for body in &bodies {
        let (status, answer) = lab.asn1(body).await;
        match body.get(..2) {
            Some([0xBF, 0x3D | 0x4E]) => assert!(status == 204 || status == 200, "{body:02x?}"),
            _ => {
                assert_eq!(status, 200, "{body:02x?}");
                eim_message(&answer);
            }
        }
    }
    // The ASN.1 binding without its content type still answers.
    let (status, answer) = lab
        .raw("/gsma/rsp2/asn1", "application/octet-stream", good)
        .await;
    assert_eq!(status, 200);
    eim_message(&answer);
    // JSON binding: every refusal is a Failed header.
    let json_bodies: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"eidValue\": 5}",
        b"{\"eidValue\": \"zz\"}",
        b"{\"eidValue\": \"8904\"}",
        b"{\"eimPackageResult\": \"!!!\"}",
        b"{\"eimPackageResult\": \"AAAA\"}",
        b"{\"euiccChallenge\": \"AAAA\"}",
        b"{\"transactionId\": \"0102\", \"authenticateServerResponse\": \"AAAA\"}",
        b"\xff\xfe",
    ];
    for function in [
        "getEimPackage",
        "provideEimPackageResult",
        "handleNotification",
        "initiateAuthentication",
        "authenticateClient",
        "getBoundProfilePackage",
        "cancelSession",
        "nonsense",
    ] {
        for body in &json_bodies {
            let (status, bytes) = lab
                .raw(
                    &format!("/gsma/rsp2/esipa/{function}"),
                    "application/json",
                    body.to_vec(),
                )
                .await;
            assert!(
                status == 200 || (function == "nonsense" && status == 404),
                "{function} {body:?}: {status}"
            );
            let answer: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{function} {body:?}: not JSON"));
            let state = &answer["header"]["functionExecutionStatus"]["status"];
            assert!(
                state == "Failed" || state == "Executed-Success",
                "{function} {body:?}: {answer}"
            );
        }
    }
    // The server is still serving the device.
    let (status, answer) = lab.asn1(&device.get_eim_package()).await;
    assert_eq!(status, 200);
    eim_message(&answer);
    lab.eim
        .server
        .shutdown(std::time::Duration::from_secs(1))
        .await;
}
