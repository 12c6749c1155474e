//! An operator revokes a device's profile through the fleet API, with the
//! real components of `ferrosim serve` (the lab in `fleet_lab`): a virtual
//! eUICC driven by the real IPA over loopback HTTPS has its primary on
//! carrier A enabled and working; the fleet API revokes it, which revokes it
//! at A's SM-DP+ over ES2+ (`revokeProfile`, with A's credentials); the fleet
//! orders a fresh primary, enables it, and once it works deletes the revoked
//! one from the eUICC, whose delete notification settles the revocation at
//! the SM-DP+ (quarantine counted from the delete). Garbage is refused with
//! clear errors and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::time::Duration;

use ferrosim_smdp::end_of_life::EndOfLifeState;
use ferrosim_smdp::store::EndOfLifeStore;
use fleet_lab::{A_ICCIDS, Lab, STEP};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_revoked_through_the_fleet_api_is_replaced_and_deleted() {
    let lab = Lab::start(1).await;
    lab.register_and_converge().await;
    lab.report_connectivity().await;
    lab.advance(STEP).await;
    let device = &lab.devices[0];
    let eid = device.eid.to_string();
    let revoked = device.profiles().await.0.expect("the primary is enabled");
    assert!(revoked.starts_with(A_ICCIDS));
    let path =
        |eid: &str, iccid: &str| format!("/api/v1/fleet/devices/{eid}/profiles/{iccid}/revoke");

    // Garbage, refused before anything changes.
    let not_there = "89440099999999999995";
    for (url, body, status, says) in [
        (path("123", &revoked), json!({}), 400, "not an EID"),
        (path(&eid, "89x"), json!({}), 400, "not an ICCID"),
        (path(&eid, &revoked), json!({"why": "x"}), 400, "why"),
        (
            path(&eid, &revoked),
            json!({"reuse_policy": "forever"}),
            400,
            "reuse_policy",
        ),
        (
            path(&eid, &revoked),
            json!({"quarantine_seconds": 60}),
            400,
            "quarantine_seconds",
        ),
        (
            path(&eid, &revoked),
            json!({"reuse_policy": "quarantine", "quarantine_seconds": -1}),
            400,
            "reuse_policy",
        ),
        (
            path(&eid, &revoked),
            json!({"reason": "x".repeat(300)}),
            400,
            "reason",
        ),
        (path(&eid, &revoked), json!({"reason": 5}), 400, ""),
        (path(&eid, not_there), json!({}), 422, "not on device"),
        (
            path(&ferrosim_eim::suite::test_eid(7).to_string(), &revoked),
            json!({}),
            404,
            "unknown device",
        ),
    ] {
        let (s, v) = lab.call("POST", &url, Some(body.clone())).await;
        assert_eq!(s, status, "{url} {body}: {v}");
        assert!(
            v.to_string().contains(says),
            "{url} {body}: `{says}` in {v}"
        );
    }
    let anonymous = lab
        .http
        .post(format!("{}{}", lab.base, path(&eid, &revoked)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let store = &lab.audit.as_ref().unwrap().1;
    let icc = ferrosim_saip::Iccid::new(&revoked).unwrap();
    assert!(
        store.revocation(&icc).await.unwrap().is_none(),
        "nothing revoked yet"
    );

    // Revoked at A's SM-DP+ over ES2+, marked in the fleet.
    let (s, v) = lab
        .call(
            "POST",
            &path(&eid, &revoked),
            Some(json!({"reason": "SIM cloned", "reuse_policy": "quarantine", "quarantine_seconds": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["carrier"], "carrier-a", "{v}");
    assert_eq!(v["end_of_life_state"], "awaiting-device-delete", "{v}");
    let at_smdp = store
        .revocation(&icc)
        .await
        .unwrap()
        .expect("revoked at the SM-DP+");
    assert_eq!(at_smdp.reason, "SIM cloned");
    let (s, v) = lab
        .call("POST", &path(&eid, &revoked), Some(json!({})))
        .await;
    assert_eq!(s, 409, "revoked twice: {v}");
    let (_, view) = lab
        .call("GET", &format!("/api/v1/fleet/devices/{eid}"), None)
        .await;
    let listed: Vec<&Value> = view["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["iccid"] == revoked.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{view}");
    assert_eq!(listed[0]["revoked"], true, "{view}");

    // A fresh primary takes its place; once it works the revoked one goes.
    let mut replaced = false;
    for _ in 0..400 {
        let (enabled, _) = device.profiles().await;
        let installed = device.installed().await;
        if enabled
            .as_ref()
            .is_some_and(|e| e.starts_with(A_ICCIDS) && *e != revoked)
            && !installed.contains(&revoked)
        {
            replaced = true;
            break;
        }
        lab.report_connectivity().await;
        lab.advance(Duration::from_secs(2)).await;
    }
    let (_, view) = lab
        .call("GET", &format!("/api/v1/fleet/devices/{eid}"), None)
        .await;
    assert!(
        replaced,
        "replaced and deleted: {:?} {view:#}",
        device.installed().await
    );

    // The delete notification reached the SM-DP+: quarantined from then.
    let mut settled = None;
    for _ in 0..100 {
        store.settle_device_deletes().await.unwrap();
        let r = store.revocation(&icc).await.unwrap().unwrap();
        if r.state != EndOfLifeState::AwaitingDeviceDelete {
            settled = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = settled.expect("the SM-DP+ got the delete notification");
    assert_eq!(r.state, EndOfLifeState::Quarantined);
    let deleted = r.deleted_on_device_at.expect("delete time");
    assert_eq!(
        r.reusable_from(),
        Some(deleted.plus(Duration::from_secs(3600)))
    );
}
