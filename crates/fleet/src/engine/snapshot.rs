//! The fleet's whole state as one serialisable value, and back: what a
//! store keeps and what a restart resumes from.

use std::cmp::Reverse;

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::Dictionary;
use serde::{Deserialize, Serialize};

use super::{Fleet, Flight, PendingDownload, RegionHealth};
use crate::action::Action;
use crate::catalog::{CarrierId, Catalog};
use crate::config::FleetConfig;
use crate::decision::{Reason, What};
use crate::device::{DeviceState, Mode};
use crate::error::FleetError;
use crate::limit::TokenBucket;
use crate::rollout::{Rollout, RolloutState};

/// Everything a fleet knows, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: Timestamp,
    /// The configuration the ids in it refer to.
    pub config: FleetConfig,
    /// Vendor/model/firmware names (device `NameId`s index this).
    pub names: Vec<String>,
    /// Devices.
    pub devices: Vec<DeviceState>,
    /// Downloads in progress.
    pub downloads: Vec<(Eid, PendingDownload)>,
    /// Actions out with drivers (issued again on restore).
    pub in_flight: Vec<Action>,
    /// Carrier health per region.
    pub regions: Vec<(CarrierId, u16, RegionHealth)>,
    /// Carriers declared out everywhere, since when.
    pub declared_everywhere: Vec<Option<Timestamp>>,
    /// When each carrier's last fleet-wide outage ended.
    pub healthy_everywhere_since: Vec<Timestamp>,
    /// Rollouts.
    pub rollouts: Vec<Rollout>,
    /// ES2+ buckets per carrier.
    pub es2_buckets: Vec<TokenBucket>,
    /// Download buckets per SM-DP+.
    pub smdp_buckets: Vec<TokenBucket>,
    /// Switch buckets per carrier.
    pub switch_buckets: Vec<TokenBucket>,
    /// Next action id.
    pub next_action: u64,
    /// Next decision number.
    pub next_decision: u64,
    /// Next rollout id.
    pub next_rollout: u32,
    /// Next activation id.
    pub next_activation: u64,
}

impl Fleet {
    /// The whole state.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let mut downloads: Vec<(Eid, PendingDownload)> = self
            .downloads
            .iter()
            .map(|(idx, p)| (self.devices[*idx as usize].eid, p.clone()))
            .collect();
        downloads.sort_by_key(|(e, _)| *e);
        let mut in_flight: Vec<Action> =
            self.in_flight.values().map(|f| f.action.clone()).collect();
        in_flight.sort_by_key(|a| a.id);
        let mut regions: Vec<(CarrierId, u16, RegionHealth)> = self
            .regions
            .iter()
            .map(|((c, r), h)| (*c, *r, *h))
            .collect();
        regions.sort_by_key(|(c, r, _)| (*c, *r));
        let mut devices = self.devices.clone();
        for d in &mut devices {
            d.work.queued = false;
        }
        Snapshot {
            taken_at: now,
            config: self.catalog.config().clone(),
            names: self.names.all().to_vec(),
            devices,
            downloads,
            in_flight,
            regions,
            declared_everywhere: self.declared_everywhere.clone(),
            healthy_everywhere_since: self.healthy_everywhere_since.clone(),
            rollouts: self.rollouts.values().cloned().collect(),
            es2_buckets: self.es2_buckets.clone(),
            smdp_buckets: self.smdp_buckets.clone(),
            switch_buckets: self.switch_buckets.clone(),
            next_action: self.next_action,
            next_decision: self.next_decision,
            next_rollout: self.next_rollout,
            next_activation: self.next_activation,
        }
    }

    /// A fleet from a snapshot, at `now`: every device is looked at on the
    /// next poll, every action that was in flight is issued again with its
    /// id (a decision says so), rollouts continue where they were.
    pub fn restore(
        snapshot: Snapshot,
        dict: Dictionary,
        now: Timestamp,
    ) -> Result<Self, FleetError> {
        let bad = |m: String| FleetError::Snapshot(m);
        let catalog =
            Catalog::from_config(snapshot.config, dict).map_err(|e| bad(e.to_string()))?;
        let mut fleet = Fleet::new(catalog, now);
        let carriers = fleet.catalog.carriers.len();
        if snapshot.es2_buckets.len() != carriers
            || snapshot.switch_buckets.len() != carriers
            || snapshot.declared_everywhere.len() != carriers
            || snapshot.healthy_everywhere_since.len() != carriers
            || snapshot.smdp_buckets.len() != fleet.catalog.smdps.len()
        {
            return Err(bad(
                "carrier or SM-DP+ tables do not match the configuration".into(),
            ));
        }
        for name in &snapshot.names {
            fleet.names.intern(name).map_err(bad)?;
        }
        let limits = (
            fleet.catalog.profile_types.len(),
            fleet.catalog.groups.len(),
            fleet.catalog.rules.len(),
            fleet.catalog.apns.len(),
            fleet.catalog.regions.len(),
            snapshot.names.len(),
        );
        for d in &snapshot.devices {
            check_device(d, limits).map_err(|m| bad(format!("device {}: {m}", d.eid)))?;
            let idx =
                u32::try_from(fleet.devices.len()).map_err(|_| bad("too many devices".into()))?;
            if fleet.index.insert(d.eid, idx).is_some() {
                return Err(bad(format!("device {} twice", d.eid)));
            }
            fleet.devices.push(*d);
            fleet.count_carriers(idx, 1);
            if d.desired.mode != Mode::Primary {
                let key = (
                    fleet.catalog.carrier_of(d.desired.primary),
                    Fleet::region_key(d),
                );
                fleet.on_fallback.entry(key).or_default().push(idx);
            }
            fleet.mark(idx);
        }
        for (eid, p) in snapshot.downloads {
            let idx = *fleet
                .index
                .get(&eid)
                .ok_or_else(|| bad(format!("download for unknown device {eid}")))?;
            if p.profile_type.index() >= limits.0 {
                return Err(bad(format!(
                    "download of device {eid}: unknown profile type"
                )));
            }
            fleet.downloads.insert(idx, p);
        }
        for (c, r, h) in snapshot.regions {
            if c.index() >= carriers {
                return Err(bad("region health of an unknown carrier".into()));
            }
            fleet.regions.insert((c, r), h);
        }
        fleet.declared_everywhere = snapshot.declared_everywhere;
        fleet.healthy_everywhere_since = snapshot.healthy_everywhere_since;
        fleet.es2_buckets = snapshot.es2_buckets;
        fleet.smdp_buckets = snapshot.smdp_buckets;
        fleet.switch_buckets = snapshot.switch_buckets;
        fleet.next_action = snapshot.next_action;
        fleet.next_decision = snapshot.next_decision;
        fleet.next_rollout = snapshot.next_rollout;
        fleet.next_activation = snapshot.next_activation;
        for mut action in snapshot.in_flight {
            let idx = *fleet
                .index
                .get(&action.device)
                .ok_or_else(|| bad(format!("action {} for unknown device", action.id)))?;
            if fleet.devices[idx as usize].work.in_flight != Some(action.id)
                || action.id.0 >= fleet.next_action
            {
                return Err(bad(format!(
                    "action {} is not the device's action in flight",
                    action.id
                )));
            }
            action.reissue = true;
            // An ES2+ call or download trigger goes out again under its
            // rate limit: what finds no token waits for one (a restart
            // with many actions in flight is no burst at the SM-DP+).
            if let Some(slot) = fleet.limit_slot(&action.command)
                && let Err((later, _)) = fleet.take_token(slot, now)
            {
                fleet.deadlines.push(Reverse((later, action.id)));
                fleet.in_flight.insert(
                    action.id,
                    Flight {
                        device: idx,
                        action,
                        deadline: later,
                        restart: true,
                    },
                );
                continue;
            }
            let timeout = if action.command.is_es2() {
                fleet.catalog.reconciler.es2_timeout
            } else {
                fleet.catalog.reconciler.eim_timeout
            };
            let deadline = now.plus(timeout.duration());
            fleet.deadlines.push(Reverse((deadline, action.id)));
            fleet.actions.push_back(action.clone());
            let rollout = fleet.devices[idx as usize].rollout.map(|m| m.rollout);
            fleet.decide(
                now,
                Some(action.device),
                rollout,
                What::Reissue { action: action.id },
                Reason::Restart,
            );
            fleet.in_flight.insert(
                action.id,
                Flight {
                    device: idx,
                    action,
                    deadline,
                    restart: false,
                },
            );
        }
        // A device whose action was in flight but is missing from the list
        // gets its state read again.
        for d in &mut fleet.devices {
            if let Some(id) = d.work.in_flight
                && !fleet.in_flight.contains_key(&id)
            {
                d.work.in_flight = None;
                d.work.resync = true;
            }
        }
        for mut r in snapshot.rollouts {
            if r.id >= fleet.next_rollout {
                return Err(bad(format!("rollout {} beyond the id counter", r.id)));
            }
            r.gate_pending = false;
            if r.state == RolloutState::Running {
                fleet.rollout_timers.push(Reverse((now, r.id)));
            }
            fleet.rollouts.insert(r.id, r);
        }
        Ok(fleet)
    }
}

fn check_device(
    d: &DeviceState,
    (types, groups, rules, apns, regions, names): (usize, usize, usize, usize, usize, usize),
) -> Result<(), String> {
    let t_ok = |t: crate::catalog::ProfileTypeId| t.index() < types;
    let desired = &d.desired;
    let ok = d.group.index() < groups
        && d.region.is_none_or(|r| r.index() < regions)
        && t_ok(desired.primary)
        && desired.fallback.is_none_or(t_ok)
        && desired.spare.is_none_or(t_ok)
        && desired.primary_apn.is_none_or(|a| a.index() < apns)
        && desired.rule.is_none_or(|r| r.index() < rules)
        && d.observed
            .iter()
            .all(|p| p.profile_type.is_none_or(t_ok) && p.iccid.iccid().is_some())
        && d.observed
            .apn_delivered
            .is_none_or(|(t, a)| t_ok(t) && a.index() < apns)
        && [d.vendor, d.model, d.firmware]
            .iter()
            .all(|n| (n.0 as usize) < names);
    if ok {
        Ok(())
    } else {
        Err("refers to something the configuration does not have".into())
    }
}
