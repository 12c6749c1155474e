//! Profile revocation end to end over loopback HTTPS: a virtual IoT device
//! driven by the real IPA (`ferrosim ipa poll`) gets a profile from the
//! SM-DP+ through an eIM download trigger (order -> installed); the operator
//! revokes it over ES2+ `revokeProfile` (order ended, ICCID awaiting the
//! device the answer names); the disable and delete queued for that device
//! through the eIM's REST API run on the eUICC as signed packages in the
//! next poll; the device's delete notification reaches the SM-DP+, which then
//! moves the ICCID to the operator's policy state (quarantine from the delete).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::Output;

use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::EndOfLifeStore;
use ferrosim_testkit::cli::output_text as text;
use serde_json::{Value, json};

use common::eim_lab::EimLab;
use common::{ferrosim, ok};

const EIM_ID: &str = "eim.revoke.test";
const TOKEN: i64 = 0x1F;

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_profile_is_deleted_on_the_device_and_the_smdp_knows() {
    use ferrosim_smdp::end_of_life::{EndOfLifeState, device_to_clean};

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
    let poll = || -> Value {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend(lab.poll_args("asn1", &ipa_state));
        args.extend(["--download", "direct", "--rplmn", "26201"]);
        serde_json::from_str(&ok(&args)).unwrap()
    };

    // order -> installed
    let (iccid, matching_id) = lab.smdp.order(None, None).await.unwrap();
    let code = format!("1${}${matching_id}", lab.smdp.address);
    lab.queue_ok(
        &eid,
        json!({"operation": "download", "activationCode": code}),
    )
    .await;
    let session = poll();
    assert_eq!(
        session["items"][0]["download"]["installed"],
        iccid.as_str(),
        "{session}"
    );
    assert_eq!(lab.order_state(&iccid).await, OrderState::Installed);
    lab.queue_ok(&eid, json!({"operation": "enable", "iccid": iccid}))
        .await;
    assert_eq!(poll()["error"], Value::Null);

    // revoke over ES2+ (revokeProfile), on the listener that serves the eIM too
    let store = &lab.smdp.store;
    let icc = ferrosim_saip::Iccid::new(&iccid).unwrap();
    let es2 = |body: Value| {
        let request = lab
            .smdp
            .https_client()
            .post(format!(
                "https://{}/gsma/rsp2/es2plus/revokeProfile",
                lab.eim_address
            ))
            .bearer_auth(&lab.smdp.token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let answer = es2(json!({
        "header": ferrosim_testkit::header(),
        "iccid": iccid,
        "reason": "stolen",
        "reusePolicy": "quarantine",
        "quarantineSeconds": 3600,
    }))
    .await;
    assert_eq!(
        answer["header"]["functionExecutionStatus"]["status"], "Executed-Success",
        "{answer}"
    );
    assert_eq!(
        answer["endOfLifeState"], "awaiting-device-delete",
        "{answer}"
    );
    assert_eq!(answer["deleteOnDevice"], eid.as_str(), "{answer}");
    let revocation = store.revocation(&icc).await.unwrap().unwrap();
    assert_eq!(revocation.state, EndOfLifeState::AwaitingDeviceDelete);
    assert_eq!(revocation.reason, "stolen");
    let twice = es2(json!({"header": ferrosim_testkit::header(), "iccid": iccid})).await;
    assert_eq!(
        twice["header"]["functionExecutionStatus"]["status"], "Failed",
        "revoked twice: {twice}"
    );
    let target = device_to_clean(&revocation).expect("on a device").digits();
    assert_eq!(target, eid);
    // the device named in the answer: disable + delete through the eIM's REST API
    lab.queue_ok(&target, json!({"operation": "disable", "iccid": iccid}))
        .await;
    lab.queue_ok(&target, json!({"operation": "delete", "iccid": iccid}))
        .await;
    assert!(
        store.settle_device_deletes().await.unwrap().is_empty(),
        "not yet deleted"
    );

    // deleted on the device; the notification reaches the SM-DP+
    let session = poll();
    assert_eq!(session["error"], Value::Null, "{session}");
    for item in 0..2 {
        assert_eq!(
            session["items"][item]["package"]["outcome"]["executed"]["codes"],
            json!([0]),
            "{session}"
        );
    }
    let (_, profiles) = lab
        .rest("GET", &format!("/api/v1/eim/devices/{eid}/profiles"), None)
        .await;
    assert!(!profiles.to_string().contains(iccid.as_str()), "{profiles}");
    let moved = store.settle_device_deletes().await.unwrap();
    assert_eq!(
        moved.len(),
        1,
        "the SM-DP+ recorded the delete notification: {session}"
    );
    let done = store.revocation(&icc).await.unwrap().unwrap();
    assert_eq!(done.state, EndOfLifeState::Quarantined);
    let deleted_at = done.deleted_on_device_at.expect("delete time");
    assert_eq!(
        done.reusable_from(),
        Some(deleted_at.plus(std::time::Duration::from_secs(3600)))
    );

    // The device leaves the fleet: the IPA wipes the eUICC (EuiccMemoryReset).
    let reset = |options: &str| -> Output {
        let mut args: Vec<&str> = vec!["ipa"];
        args.extend(device);
        args.extend(["memory-reset", "--reset", options]);
        ferrosim(&args)
    };
    for garbage in ["bogus", "", "eim-config,nothing", "EIM_CONFIG"] {
        let out = reset(garbage);
        let t = text(&out);
        assert!(!out.status.success(), "{garbage}: {t}");
        assert!(!t.contains("panicked"), "{garbage}: {t}");
    }
    let mut bare: Vec<&str> = vec!["ipa"];
    bare.extend(device);
    bare.push("memory-reset");
    assert!(!ferrosim(&bare).status.success(), "--reset is required");
    let options = "operational-profiles,test-profiles,default-smdp-address,eim-config,immediate-enable-config";
    let before = std::fs::read_to_string(&euicc_state).unwrap();
    assert!(before.contains(EIM_ID), "associated before the reset");
    let out = reset(options);
    assert!(out.status.success(), "{}", text(&out));
    let wiped: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The revoked profile was deleted already: nothing left to delete;
    // the eIM the device was associated with is forgotten.
    assert_eq!(
        wiped["profiles_and_address"], "nothing-to-delete",
        "{wiped}"
    );
    assert_eq!(wiped["eim_config"], "ok", "{wiped}");
    assert_ne!(wiped["immediate_enable_config"], Value::Null, "{wiped}");
    let state = std::fs::read_to_string(&euicc_state).unwrap();
    assert!(
        !state.contains(EIM_ID),
        "the eIM is gone from the eUICC: {state}"
    );
    // Again: nothing of either left.
    let again: Value = serde_json::from_slice(&reset("eim-config").stdout).unwrap();
    assert_eq!(again["eim_config"], "nothing-to-reset", "{again}");
    assert_eq!(again["immediate_enable_config"], Value::Null, "{again}");
}
