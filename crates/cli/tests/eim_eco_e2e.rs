//! eIM Configuration Operations end to end over loopback HTTPS: a virtual
//! IoT device driven by the real IPA (`ferrosim ipa poll`) is associated
//! with the eIM of a running server; the operator queues (REST API) an eCO
//! addEim of a second eIM, updateEim of it, and deleteEim of it, each
//! followed by a listEim; after each poll the eIM holds the eUICC's
//! verified results with the codes SGP.32 gives, the signed listEim names
//! the eIMs the eUICC knows, and the eUICC's own state (its eIM list, FQDN,
//! counter, association token, key) shows the change. The refusals the
//! eUICC gives (an eIM that already exists, one it does not know) come back
//! as verified results too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_crypto::SoftwareKey;
use ferrosim_euicc::EuiccState;
use serde_json::{Value, json};

use common::eim_lab::{EimLab, spki};
use common::ok;

const EIM_ID: &str = "eim.eco.test";
const SECOND_EIM: &str = "eim.second.test";
const TOKEN: i64 = 0x33;

/// The operations of a verified, signed package result (`der`: base64 of
/// the EuiccPackageResult the eIM stored).
fn signed_results(result: &Value) -> Vec<sgp32::EuiccResultData> {
    assert_eq!(result["trust"], "verified", "{result}");
    assert_eq!(result["outcome"]["outcome"], "executed", "{result}");
    // The eIM keeps the CHOICE inside `BF51`: wrap it again.
    let inner = STANDARD.decode(result["der"].as_str().unwrap()).unwrap();
    let mut der = vec![0xBF, 0x51];
    match inner.len() {
        n @ 0..=0x7F => der.push(u8::try_from(n).unwrap()),
        n @ 0x80..=0xFF => der.extend([0x81, u8::try_from(n).unwrap()]),
        n => der.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend_from_slice(&inner);
    match decode_der::<sgp32::EuiccPackageResult>(&der).unwrap() {
        sgp32::EuiccPackageResult::euiccPackageResultSigned(s) => {
            assert_eq!(s.euicc_package_result_data_signed.eim_id, EIM_ID);
            s.euicc_package_result_data_signed.euicc_result
        }
        other => panic!("not a signed package result: {other:?}"),
    }
}

/// The eIM ids a listEim result names.
fn listed_eims(result: &Value) -> Vec<String> {
    match &signed_results(result)[..] {
        [sgp32::EuiccResultData::listEimResult(sgp32::ListEimResult::eimIdList(list))] => {
            list.iter().map(|e| e.eim_id.clone()).collect()
        }
        other => panic!("not a listEim result: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn add_update_and_delete_eim_run_on_the_euicc_with_verified_results() {
    let lab = EimLab::start(EIM_ID, TOKEN).await;
    let first_eim = lab.add_initial_eim();
    let card = lab.euicc_init(0, "euicc.json");
    let (eid, euicc_state) = (card.eid.clone(), card.euicc_state.clone());
    let ipa_state = lab.dir.path().join("ipa.json");
    let device = card.args();
    assert!(
        card.add_initial_eim(&first_eim)
            .contains("initial eIM added")
    );
    lab.associate_ok(0).await;
    // Runs what is queued; the results it added at the eIM, in order.
    let mut seen = 0;
    let mut poll = async |expected: usize| -> Vec<Value> {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend(lab.poll_args("asn1", &ipa_state));
        let session: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(session["error"], Value::Null, "{session}");
        assert_eq!(
            session["items"].as_array().unwrap().len(),
            expected,
            "{session}"
        );
        assert_eq!(session["pending"], 0, "{session}");
        let results = lab.results(&eid).await;
        assert_eq!(
            results.len(),
            seen + expected,
            "each result once: {results:?}"
        );
        let new = results[seen..].to_vec();
        seen = results.len();
        new
    };
    let eims_on_card = || EuiccState::load(&euicc_state).unwrap().eims;

    // addEim: a second eIM with its key, FQDN, counter and association token.
    let second_key = SoftwareKey::generate().unwrap().verifying_key().unwrap();
    let second_spki = STANDARD.encode(spki(&second_key));
    lab.queue_all(
        &eid,
        &[
            json!({"operation": "add-eim", "eim": {
                "eimId": SECOND_EIM,
                "eimFqdn": "second.example:8443",
                "counterValue": 5,
                "associationToken": 9,
                "eimPublicKey": second_spki,
            }}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(2).await;
    assert!(
        matches!(
            &signed_results(&results[0])[..],
            [sgp32::EuiccResultData::addEimResult(sgp32::AddEimResult::associationToken(t))]
                if *t == Integer::from(9)
        ),
        "addEim answers the association token: {:?}",
        results[0]
    );
    assert_eq!(listed_eims(&results[1]), [EIM_ID, SECOND_EIM]);
    let eims = eims_on_card();
    assert_eq!(eims.len(), 2, "{eims:?}");
    assert_eq!(eims[1].eim_id, SECOND_EIM);
    assert_eq!(eims[1].fqdn.as_deref(), Some("second.example:8443"));
    assert_eq!(eims[1].counter, 5);
    assert_eq!(eims[1].association_token, Some(9));
    assert_eq!(
        eims[1].public_key,
        second_key.to_uncompressed().unwrap().to_vec()
    );

    // A second addEim of the same id: associatedEimAlreadyExists (2).
    lab.queue_all(
        &eid,
        &[json!({"operation": "add-eim", "eim": {
            "eimId": SECOND_EIM,
            "eimPublicKey": second_spki,
        }})],
    )
    .await;
    let results = poll(1).await;
    assert_codes(&results[..1], &[2]);
    assert!(matches!(
        &signed_results(&results[0])[..],
        [sgp32::EuiccResultData::addEimResult(sgp32::AddEimResult::addEimResultCode(c))]
            if *c == Integer::from(2)
    ));
    assert_eq!(
        eims_on_card()[1..],
        eims[1..],
        "the second eIM is as it was"
    );

    // updateEim: a new FQDN and counter value; the key stays.
    lab.queue_all(
        &eid,
        &[
            json!({"operation": "update-eim", "eim": {
                "eimId": SECOND_EIM,
                "eimFqdn": "moved.example:9443",
                "counterValue": 40,
            }}),
            json!({"operation": "update-eim", "eim": {"eimId": "eim.unknown.test"}}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(3).await;
    assert_codes(&results[..2], &[0, 1]);
    assert_eq!(listed_eims(&results[2]), [EIM_ID, SECOND_EIM]);
    let eims = eims_on_card();
    assert_eq!(eims[1].fqdn.as_deref(), Some("moved.example:9443"));
    assert_eq!(eims[1].counter, 40);
    assert_eq!(eims[1].association_token, Some(9));
    assert_eq!(
        eims[1].public_key,
        second_key.to_uncompressed().unwrap().to_vec()
    );

    // deleteEim: the second eIM goes; deleting it again is eimNotFound (1).
    lab.queue_all(
        &eid,
        &[
            json!({"operation": "delete-eim", "eimId": SECOND_EIM}),
            json!({"operation": "delete-eim", "eimId": SECOND_EIM}),
            json!({"operation": "list-eim"}),
        ],
    )
    .await;
    let results = poll(3).await;
    assert_codes(&results[..2], &[0, 1]);
    assert_eq!(listed_eims(&results[2]), [EIM_ID]);
    let eims = eims_on_card();
    assert_eq!(eims.len(), 1, "{eims:?}");
    assert_eq!(eims[0].eim_id, EIM_ID);

    // The eIM's own association is untouched: its queue is empty and a
    // later package still runs.
    let (_, view) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}"), None)
        .await;
    assert_eq!(view["queue"], json!([]), "{view}");
    assert_eq!(view["counter"], 9, "{view}");
    lab.queue_all(&eid, &[json!({"operation": "list-eim"})])
        .await;
    let results = poll(1).await;
    assert_eq!(listed_eims(&results[0]), [EIM_ID]);
}

/// Asserts that each result carries the one eUICC result code given for it,
/// in order (0 ok, 1 eimNotFound, 2 associatedEimAlreadyExists).
fn assert_codes(results: &[Value], codes: &[u64]) {
    assert_eq!(results.len(), codes.len());
    for (result, code) in results.iter().zip(codes) {
        assert_eq!(result["outcome"]["codes"], json!([code]), "{result:?}");
    }
}
