//! The fleet's state in a [`FleetStore`], written with the versions this
//! instance read: a commit made from state another instance has changed
//! since is refused as a whole ([`StoreError::Stale`]) and the driver
//! reloads and decides again. Every commit also rewrites the engine record,
//! so commits of two instances on one database are serialised by it: two
//! instances never both decide for the same device.

use std::collections::{HashMap, HashSet};

use ferrosim_fleet::action::ActionId;
use ferrosim_fleet::decision::Decision;
use ferrosim_fleet::rollout::Rollout;
use ferrosim_fleet::store::{
    EngineState, FleetChanges, FleetStore, StoreError, StoreResult, Version, Write,
};
use ferrosim_fleet::{DeviceState, Fleet, Snapshot};
use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::Dictionary;

/// What this instance last read or wrote, with versions.
#[derive(Debug, Default)]
pub(crate) struct Written {
    devices: HashMap<Eid, (DeviceState, Version)>,
    rollouts: HashMap<u32, (Rollout, Version)>,
    engine: Option<(EngineState, Version)>,
    in_flight: HashSet<ActionId>,
}

/// Whether the stored engine record is no longer the one this instance
/// read or wrote (another instance committed since).
pub(crate) async fn moved(store: &impl FleetStore, written: &Written) -> Result<bool, String> {
    let stored = store.engine().await.map_err(|e| e.to_string())?;
    Ok(stored.map(|v| v.version) != written.engine.as_ref().map(|(_, v)| *v))
}

/// Loads the fleet and the versions it was read at; `None` if nothing was
/// ever stored. The records are read one query after another: every commit
/// rewrites the engine record, so a read is consistent when the engine's
/// version is the same after it as before; otherwise it is read again.
pub(crate) async fn load(
    store: &impl FleetStore,
    dict: Dictionary,
    now: Timestamp,
) -> Result<Option<(Fleet, Written)>, String> {
    for _ in 0..20 {
        let Some((snapshot, written)) = read(store).await? else {
            return Ok(None);
        };
        let after = store.engine().await.map_err(|e| e.to_string())?;
        let before = written.engine.as_ref().map(|(_, v)| *v);
        if after.map(|v| v.version) != before {
            continue;
        }
        let fleet = Fleet::restore(snapshot, dict, now).map_err(|e| e.to_string())?;
        return Ok(Some((fleet, written)));
    }
    Err("the fleet kept changing while it was read".into())
}

async fn read(store: &impl FleetStore) -> Result<Option<(Snapshot, Written)>, String> {
    let Some(engine) = store.engine().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut written = Written {
        engine: Some((engine.record.clone(), engine.version)),
        ..Written::default()
    };
    let mut devices = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .devices(after, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.eid);
        for v in page {
            written.devices.insert(v.record.eid, (v.record, v.version));
            devices.push(v.record);
        }
    }
    let mut rollouts = Vec::new();
    for v in store.rollouts().await.map_err(|e| e.to_string())? {
        written
            .rollouts
            .insert(v.record.id, (v.record.clone(), v.version));
        rollouts.push(v.record);
    }
    let in_flight = store.in_flight().await.map_err(|e| e.to_string())?;
    written.in_flight = in_flight.iter().map(|a| a.id).collect();
    let e = engine.record;
    let snapshot = Snapshot {
        taken_at: e.taken_at,
        config: e.config,
        names: e.names,
        devices,
        downloads: e.downloads,
        in_flight,
        regions: e.regions,
        declared_everywhere: e.declared_everywhere,
        healthy_everywhere_since: e.healthy_everywhere_since,
        rollouts,
        es2_buckets: e.es2_buckets,
        smdp_buckets: e.smdp_buckets,
        switch_buckets: e.switch_buckets,
        next_action: e.counters.0,
        next_decision: e.counters.1,
        next_rollout: e.counters.2,
        next_activation: e.counters.3,
    };
    Ok(Some((snapshot, written)))
}

/// What a commit of the fleet's current state writes: changed devices and
/// rollouts, the in-flight set's changes, the decisions, the engine record.
/// `None` when nothing changed (no commit needed).
pub(crate) struct Pending {
    changes: FleetChanges,
    devices: Vec<(Eid, DeviceState, Version)>,
    rollouts: Vec<(u32, Rollout, Version)>,
    engine: (EngineState, Version),
    in_flight: HashSet<ActionId>,
}

/// The eIM items of in-flight actions the stored engine record names.
pub(crate) fn stored_eim_items(written: &Written) -> Vec<(ActionId, u64)> {
    written
        .engine
        .as_ref()
        .map(|(e, _)| e.eim_items.clone())
        .unwrap_or_default()
}

/// The changes between `fleet` (with the eIM items of its in-flight
/// actions) and what was written.
pub(crate) fn diff(
    fleet: &Fleet,
    written: &Written,
    decisions: Vec<Decision>,
    eim_items: &[(ActionId, u64)],
    now: Timestamp,
) -> Option<Pending> {
    let snap = fleet.snapshot(now);
    let mut changes = FleetChanges {
        decisions,
        ..FleetChanges::default()
    };
    let mut devices = Vec::new();
    for d in &snap.devices {
        match written.devices.get(&d.eid) {
            Some((old, _)) if old == d => {}
            Some((_, v)) => {
                changes.devices.push(Write::Update {
                    expected: *v,
                    record: *d,
                });
                devices.push((d.eid, *d, v.next()));
            }
            None => {
                changes.devices.push(Write::Insert(*d));
                devices.push((d.eid, *d, Version::default()));
            }
        }
    }
    let mut rollouts = Vec::new();
    for r in &snap.rollouts {
        match written.rollouts.get(&r.id) {
            Some((old, _)) if old == r => {}
            Some((_, v)) => {
                changes.rollouts.push(Write::Update {
                    expected: *v,
                    record: r.clone(),
                });
                rollouts.push((r.id, r.clone(), v.next()));
            }
            None => {
                changes.rollouts.push(Write::Insert(r.clone()));
                rollouts.push((r.id, r.clone(), Version::default()));
            }
        }
    }
    let in_flight: HashSet<ActionId> = snap.in_flight.iter().map(|a| a.id).collect();
    changes.issued = snap
        .in_flight
        .iter()
        .filter(|a| !written.in_flight.contains(&a.id))
        .cloned()
        .collect();
    changes.answered = written
        .in_flight
        .iter()
        .filter(|id| !in_flight.contains(id))
        .copied()
        .collect();
    changes.answered.sort();
    let engine = EngineState {
        taken_at: snap.taken_at,
        config: snap.config,
        names: snap.names,
        downloads: snap.downloads,
        regions: snap.regions,
        declared_everywhere: snap.declared_everywhere,
        healthy_everywhere_since: snap.healthy_everywhere_since,
        es2_buckets: snap.es2_buckets,
        smdp_buckets: snap.smdp_buckets,
        switch_buckets: snap.switch_buckets,
        counters: (
            snap.next_action,
            snap.next_decision,
            snap.next_rollout,
            snap.next_activation,
        ),
        eim_items: {
            let mut items: Vec<(ActionId, u64)> = eim_items
                .iter()
                .filter(|(id, _)| in_flight.contains(id))
                .copied()
                .collect();
            items.sort_unstable();
            items.dedup();
            items
        },
    };
    let engine_same = written.engine.as_ref().is_some_and(|(old, _)| {
        let mut old = old.clone();
        old.taken_at = engine.taken_at;
        old == engine
    });
    let nothing = changes.devices.is_empty()
        && changes.rollouts.is_empty()
        && changes.issued.is_empty()
        && changes.answered.is_empty()
        && changes.decisions.is_empty()
        && engine_same;
    if nothing {
        return None;
    }
    let expected = written.engine.as_ref().map(|(_, v)| *v);
    let next = expected.map_or(Version::default(), Version::next);
    changes.engine = Some((expected, engine.clone()));
    Some(Pending {
        changes,
        devices,
        rollouts,
        engine: (engine, next),
        in_flight,
    })
}

/// Commits `pending`; on success `written` follows.
pub(crate) async fn commit(
    store: &impl FleetStore,
    written: &mut Written,
    pending: Pending,
) -> StoreResult<()> {
    store.commit(pending.changes).await?;
    for (eid, d, v) in pending.devices {
        written.devices.insert(eid, (d, v));
    }
    for (id, r, v) in pending.rollouts {
        written.rollouts.insert(id, (r, v));
    }
    written.engine = Some(pending.engine);
    written.in_flight = pending.in_flight;
    Ok(())
}

/// Whether a store error means "someone else wrote first".
pub(crate) fn is_stale(e: &StoreError) -> bool {
    matches!(e, StoreError::Stale | StoreError::Conflict(_))
}
