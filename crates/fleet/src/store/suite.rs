//! The behaviour every [`FleetStore`] must have, as a test suite.
//!
//! `ferrosim-fleet`'s tests run it against [`super::MemFleetStore`]; SQL
//! stores run it against SQLite and PostgreSQL. Each check panics with a
//! message naming what broke; store failures are returned.

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::Dictionary;

use super::{
    DecisionQuery, FleetChanges, FleetStore, StoreError, StoreResult, Version, Write, load, save,
};
use crate::action::{Action, ActionId, Command};
use crate::catalog::Catalog;
use crate::decision::{Decision, Reason, What};
use crate::device::{Capabilities, DeviceSpec, DeviceState};
use crate::engine::Fleet;
use crate::rollout::{ChangeSpec, RolloutSpec};

/// The configuration the suite's fleets use (the crate's example).
pub const CONFIG: &str = include_str!("../../testdata/fleet.toml");

/// A valid EID numbered `n`.
pub fn test_eid(n: u32) -> Eid {
    let body = format!("8904903200000000000001{n:08}");
    Eid::from_body(&body).unwrap_or_else(|_| unreachable!("30 generated digits always make an EID"))
}

/// A fleet of `n` devices in group "meters", at `now`, with one rollout.
pub fn fixture_fleet(n: u32, now: Timestamp) -> Fleet {
    let catalog = Catalog::from_toml(CONFIG, Dictionary::new())
        .unwrap_or_else(|e| panic!("suite config: {e}"));
    let mut fleet = Fleet::new(catalog, now);
    for i in 0..n {
        let spec = DeviceSpec {
            eid: test_eid(i),
            group: "meters".into(),
            vendor: "acme".into(),
            model: format!("m{}", i % 3),
            firmware: "2.0.0".into(),
            region: Some("north".into()),
            tags: vec![],
            capabilities: Some(Capabilities::default()),
            profiles: vec![],
        };
        fleet
            .add_device(&spec, now)
            .unwrap_or_else(|e| panic!("suite device: {e}"));
    }
    let spec = RolloutSpec {
        name: "suite".into(),
        groups: vec![],
        tags_any: vec![],
        change: ChangeSpec::Rule {
            rule: "device-local".into(),
        },
        waves: vec![50, 100],
        soak: crate::Span::mins(5),
        max_wait: crate::Span::mins(30),
        gate: Default::default(),
        compat: Default::default(),
        manual_approval: false,
        seed: 1,
    };
    fleet
        .create_rollout(spec, now)
        .unwrap_or_else(|e| panic!("suite rollout: {e}"));
    fleet
}

fn decision(seq: u64, device: Option<Eid>, rollout: Option<u32>) -> Decision {
    Decision {
        seq,
        at: Timestamp(seq as i64),
        device,
        rollout,
        what: What::Hold,
        reason: Reason::Operator,
    }
}

fn action(id: u64, device: Eid) -> Action {
    Action {
        id: ActionId(id),
        device,
        command: Command::EimListProfileInfo,
        activation: None,
        reissue: false,
    }
}

/// Runs every check on an empty `store`.
pub async fn run_all(store: &impl FleetStore) -> StoreResult<()> {
    devices_and_paging(store).await?;
    compare_and_set(store).await?;
    in_flight_and_decisions(store).await?;
    whole_fleet_round_trip(store).await?;
    webhook_claims(store).await?;
    Ok(())
}

/// Webhook delivery cursors: one holder at a time, a lease that expires,
/// a cursor that only the holder moves and only forward, a backoff that
/// holds every instance off.
async fn webhook_claims(store: &impl FleetStore) -> StoreResult<()> {
    let a = store.claim_webhook("ops", "a", 1_000, 100).await?;
    let a = a.expect("a new endpoint is claimed");
    assert_eq!(
        (a.delivered_seq, a.failures),
        (0, 0),
        "a new endpoint starts at 0"
    );
    assert!(
        store.claim_webhook("ops", "b", 1_050, 100).await?.is_none(),
        "held by a"
    );
    assert!(
        store.claim_webhook("ops", "a", 1_050, 100).await?.is_some(),
        "a renews"
    );
    assert!(store.webhook_delivered("ops", "a", 3, 1_060, 100).await?);
    assert!(
        !store.webhook_delivered("ops", "a", 2, 1_060, 100).await?,
        "never backwards"
    );
    assert!(
        !store.webhook_delivered("ops", "b", 4, 1_060, 100).await?,
        "b holds nothing"
    );
    // a's lease (extended to 1_160) runs out: b takes over where a stood.
    let b = store.claim_webhook("ops", "b", 1_161, 100).await?;
    assert_eq!(b.map(|c| c.delivered_seq), Some(3), "b resumes after 3");
    assert!(
        !store.webhook_delivered("ops", "a", 4, 1_170, 100).await?,
        "a lost the claim"
    );
    assert!(
        store
            .webhook_failed("ops", "b", 2_000, "answered 500")
            .await?
    );
    assert!(
        !store.webhook_failed("ops", "b", 2_000, "again").await?,
        "released"
    );
    assert!(
        store.claim_webhook("ops", "a", 1_999, 100).await?.is_none(),
        "backing off"
    );
    let c = store.claim_webhook("ops", "a", 2_000, 100).await?;
    let c = c.expect("due again");
    assert_eq!((c.delivered_seq, c.failures), (3, 1));
    assert_eq!(c.last_error.as_deref(), Some("answered 500"));
    assert!(store.webhook_delivered("ops", "a", 4, 2_010, 100).await?);
    assert!(
        store.claim_webhook("ops", "b", 2_020, 100).await?.is_none(),
        "a holds it"
    );
    store.release_webhook("ops", "b").await?;
    assert!(
        store.claim_webhook("ops", "b", 2_020, 100).await?.is_none(),
        "only a releases"
    );
    store.release_webhook("ops", "a").await?;
    assert!(
        store.claim_webhook("ops", "b", 2_020, 100).await?.is_some(),
        "released"
    );
    assert!(
        store
            .claim_webhook("other", "b", 2_010, 100)
            .await?
            .is_some()
    );
    let all = store.webhook_cursors().await?;
    let names: Vec<(&str, u64, u32)> = all
        .iter()
        .map(|c| (c.endpoint.as_str(), c.delivered_seq, c.failures))
        .collect();
    assert_eq!(
        names,
        vec![("ops", 4, 0), ("other", 0, 0)],
        "cursors by name"
    );
    Ok(())
}

async fn devices_and_paging(store: &impl FleetStore) -> StoreResult<()> {
    let fleet = fixture_fleet(25, Timestamp(1_000));
    let devices: Vec<DeviceState> = fleet.devices().copied().collect();
    let changes = FleetChanges {
        devices: devices.iter().map(|d| Write::Insert(*d)).collect(),
        ..FleetChanges::default()
    };
    store.commit(changes).await?;
    let one = store.device(&test_eid(7)).await?.expect("device 7 stored");
    assert_eq!(one.record, devices[7], "a device reads back as written");
    assert_eq!(one.version, Version(0), "first version");
    assert!(store.device(&test_eid(99)).await?.is_none());
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.devices(after, 10).await?;
        assert!(page.len() <= 10, "page size");
        let Some(last) = page.last() else { break };
        after = Some(last.record.eid);
        seen.extend(page.into_iter().map(|v| v.record.eid));
    }
    let mut want: Vec<Eid> = devices.iter().map(|d| d.eid).collect();
    want.sort();
    assert_eq!(seen, want, "paging returns every device once, in EID order");
    Ok(())
}

async fn compare_and_set(store: &impl FleetStore) -> StoreResult<()> {
    let v = store.device(&test_eid(3)).await?.expect("device 3 stored");
    let mut changed = v.record;
    changed.work.attempts = 9;
    // An update at the version read succeeds and moves the version on.
    store
        .commit(FleetChanges {
            devices: vec![Write::Update {
                expected: v.version,
                record: changed,
            }],
            ..FleetChanges::default()
        })
        .await?;
    let after = store.device(&test_eid(3)).await?.expect("device 3 stored");
    assert_eq!(after.record.work.attempts, 9);
    assert_eq!(after.version, v.version.next());
    // The same update again is stale, and a stale part writes nothing:
    // neither the other device nor the decision of the same commit.
    let other = store.device(&test_eid(4)).await?.expect("device 4 stored");
    let mut other_changed = other.record;
    other_changed.work.attempts = 5;
    let result = store
        .commit(FleetChanges {
            devices: vec![
                Write::Update {
                    expected: other.version,
                    record: other_changed,
                },
                Write::Update {
                    expected: v.version,
                    record: changed,
                },
            ],
            decisions: vec![decision(1, None, None)],
            ..FleetChanges::default()
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Stale)),
        "stale update refused: {result:?}"
    );
    let other_now = store.device(&test_eid(4)).await?.expect("device 4 stored");
    assert_eq!(other_now, other, "nothing of a failed commit is written");
    assert!(store.decisions(&DecisionQuery::default()).await?.is_empty());
    // Inserting an existing device is a conflict; updating a missing one stale.
    let dup = store
        .commit(FleetChanges {
            devices: vec![Write::Insert(other.record)],
            ..FleetChanges::default()
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let mut ghost = other.record;
    ghost.eid = test_eid(500);
    let missing = store
        .commit(FleetChanges {
            devices: vec![Write::Update {
                expected: Version(0),
                record: ghost,
            }],
            ..FleetChanges::default()
        })
        .await;
    assert!(matches!(missing, Err(StoreError::Stale)), "{missing:?}");
    Ok(())
}

async fn in_flight_and_decisions(store: &impl FleetStore) -> StoreResult<()> {
    let (a, b) = (test_eid(1), test_eid(2));
    store
        .commit(FleetChanges {
            issued: vec![action(10, a), action(11, b)],
            decisions: vec![
                decision(1, Some(a), None),
                decision(2, Some(b), Some(1)),
                decision(3, None, Some(1)),
            ],
            ..FleetChanges::default()
        })
        .await?;
    let ids: Vec<u64> = store.in_flight().await?.iter().map(|x| x.id.0).collect();
    assert_eq!(ids, [10, 11]);
    let dup = store
        .commit(FleetChanges {
            issued: vec![action(10, a)],
            ..FleetChanges::default()
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "an action id is issued once"
    );
    let old = store
        .commit(FleetChanges {
            decisions: vec![decision(2, None, None)],
            ..FleetChanges::default()
        })
        .await;
    assert!(
        matches!(old, Err(StoreError::Conflict(_))),
        "decision numbers only grow"
    );
    store
        .commit(FleetChanges {
            answered: vec![ActionId(10)],
            issued: vec![action(12, a)],
            ..FleetChanges::default()
        })
        .await?;
    let ids: Vec<u64> = store.in_flight().await?.iter().map(|x| x.id.0).collect();
    assert_eq!(ids, [11, 12]);
    let by_device = store
        .decisions(&DecisionQuery {
            device: Some(b),
            ..DecisionQuery::default()
        })
        .await?;
    assert_eq!(by_device.iter().map(|d| d.seq).collect::<Vec<_>>(), [2]);
    let by_rollout = store
        .decisions(&DecisionQuery {
            rollout: Some(1),
            after_seq: 2,
            ..DecisionQuery::default()
        })
        .await?;
    assert_eq!(by_rollout.iter().map(|d| d.seq).collect::<Vec<_>>(), [3]);
    let limited = store
        .decisions(&DecisionQuery {
            limit: 2,
            ..DecisionQuery::default()
        })
        .await?;
    assert_eq!(limited.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2]);
    // Clean up for the next check.
    store
        .commit(FleetChanges {
            answered: vec![ActionId(11), ActionId(12)],
            ..FleetChanges::default()
        })
        .await?;
    Ok(())
}

async fn whole_fleet_round_trip(store: &impl FleetStore) -> StoreResult<()> {
    let now = Timestamp(2_000_000);
    let mut fleet = fixture_fleet(25, now);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    fleet.poll(now, &mut rng);
    save(store, &fleet, now).await?;
    let engine = store.engine().await?.expect("engine state stored");
    assert_eq!(engine.version, Version(0));
    assert_eq!(store.in_flight().await?.len(), fleet.in_flight().count());
    assert_eq!(store.rollouts().await?.len(), 1);
    let loaded = load(store, Dictionary::new(), now)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .expect("a saved fleet loads");
    assert_eq!(loaded.len(), fleet.len());
    assert_eq!(loaded.snapshot(now).devices.len(), 25);
    let mut a = fleet.snapshot(now);
    let mut b = loaded.snapshot(now);
    a.devices.sort_by_key(|d| d.eid);
    b.devices.sort_by_key(|d| d.eid);
    assert_eq!(a.devices, b.devices, "devices survive save and load");
    assert_eq!(a.rollouts, b.rollouts, "rollouts survive save and load");
    assert_eq!(a.in_flight.len(), b.in_flight.len());
    // Saving again updates in place (versions move on).
    save(store, &loaded, now).await?;
    assert_eq!(store.engine().await?.map(|v| v.version), Some(Version(1)));
    Ok(())
}

use rand::SeedableRng;
