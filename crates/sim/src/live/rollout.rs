//! Full-fidelity mode for a scenario's rollouts (`rollout`): the scenario's
//! `[[rollout]]`s created at the target's fleet (`POST
//! /api/v1/fleet/rollouts`) at their scenario times, run by the target's
//! rollout engine in real time, and read back from its own records.
//!
//! The target decides everything: which devices each wave takes, when a
//! wave's soak ends, the gate's verdict on what the devices reported, the
//! halt and the rollback. Only the timings of the scenario's rollouts are
//! adapted to the compressed event: a rollout's `soak` and `max_wait` are
//! rollout parameters of the REST request, so the simulator divides them
//! by the time scale (at least [`MIN_SOAK`]) and sends them with the rest
//! of the scenario's spec unchanged; they are reported as sent.
//!
//! The device side is the agent's: an `agent.apnConfig` command gives the
//! device's agent an APN setting for one of its profiles; the network model
//! decides whether the carrier serves it (the scenario's `apns` of the
//! carrier). A new APN for the enabled profile makes the modem re-attach;
//! on an APN its carrier does not serve the device registers but its data
//! path fails (no PDN connection, every probe lost), and it reports both
//! to the target's report endpoint like any other registration. The time
//! each device holds an unserved APN is measured on the scenario's clock.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ferrosim_fleet::{RolloutSpec, Span};
use ferrosim_ids::Iccid;
use serde::Serialize;
use serde_json::Value;

use crate::error::SimError;
use crate::report::{GateOutcome, RolloutOutcome};
use crate::scenario::Scenario;

/// The shortest soak sent to the target: the devices' agents need a few
/// polls to take a wave's change and report on it.
pub const MIN_SOAK: Duration = Duration::from_secs(1);

/// A scenario rollout as the simulator sends it: created at `at_ms` on the
/// scenario's clock, its soak and maximum wait divided by the time scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Scenario time of its creation (ms).
    pub at_ms: i64,
    /// The spec sent.
    pub spec: RolloutSpec,
}

/// The scenario's rollouts for a run at `time_scale`, in the order of
/// their start.
pub fn plan(scenario: &Scenario, time_scale: f64) -> Vec<Planned> {
    let scale = |s: Span, floor: Duration| {
        let ms = (s.millis() as f64 / time_scale).round();
        Span((ms as u64).max(floor.as_millis() as u64))
    };
    let mut out: Vec<Planned> = scenario
        .rollouts
        .iter()
        .map(|r| {
            let mut spec = r.spec.clone();
            spec.soak = scale(spec.soak, MIN_SOAK);
            spec.max_wait = scale(spec.max_wait, MIN_SOAK).max(spec.soak);
            Planned {
                at_ms: r.start.millis_i64(),
                spec,
            }
        })
        .collect();
    out.sort_by_key(|p| p.at_ms);
    out
}

/// One rollout as the target ran it (`rollouts` of the full-fidelity
/// figures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveRollout {
    /// The scenario's name for it.
    pub name: String,
    /// The target's id, when it was created (`None`: refused, see `error`).
    pub id: Option<u32>,
    /// Why the target refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its soak as sent (s): the scenario's divided by the time scale.
    pub soak_s: f64,
    /// Its maximum wait as sent (s).
    pub max_wait_s: f64,
    /// Where it ended, by the target's view of it.
    pub state: String,
    /// Waves the target started.
    pub waves_started: u64,
    /// Devices its waves took (the target's wave sizes).
    pub devices_changed: u64,
    /// Devices the target rolled back (its `roll_back` decisions).
    pub rolled_back: u64,
    /// The gates' verdicts in order.
    pub gate_verdicts: Vec<String>,
}

/// The target's view of a rollout (`GET /api/v1/fleet/rollouts/{id}`) as
/// the report's rollout outcome.
pub fn outcome(name: &str, view: &Value) -> RolloutOutcome {
    let gates = view["gates"]
        .as_array()
        .map(|gates| {
            gates
                .iter()
                .map(|g| GateOutcome {
                    verdict: g["verdict"].as_str().unwrap_or("?").to_owned(),
                    registrations: g["registrations"].as_u64().unwrap_or(0),
                    data_path_checks: g["data_path_checks"].as_u64().unwrap_or(0),
                    failed: g["checks"]
                        .as_array()
                        .map(|checks| {
                            checks
                                .iter()
                                .filter(|c| c["passed"] == false)
                                .map(|c| {
                                    (
                                        c["metric"].as_str().unwrap_or("?").to_owned(),
                                        c["wave"].as_f64(),
                                        c["bound"].as_f64().unwrap_or(0.0),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    RolloutOutcome {
        name: name.to_owned(),
        state: view["state"].as_str().unwrap_or("?").to_owned(),
        waves: view["waves"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|p| p.as_u64().and_then(|p| u8::try_from(p).ok()))
                    .collect()
            })
            .unwrap_or_default(),
        waves_started: view["wave"].as_u64().map_or(0, |w| w + 1),
        devices_changed: view["wave_sizes"]
            .as_array()
            .map_or(0, |s| s.iter().filter_map(Value::as_u64).sum()),
        eligible: view["eligible"].as_u64().unwrap_or(0),
        gates,
    }
}

/// The devices the target rolled back in rollout `id`, from its decision
/// log.
pub fn rolled_back(decisions: &[Value], id: u32) -> u64 {
    decisions
        .iter()
        .filter(|d| d["rollout"].as_u64() == Some(u64::from(id)))
        .filter(|d| d["what"]["decision"] == "roll_back")
        .filter_map(|d| d["device"].as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64
}

/// The APN settings a device's agent holds, and its time on an APN its
/// carrier does not serve.
#[derive(Debug, Default)]
pub struct AgentApns {
    /// The APN (access point name) taken per profile.
    held: HashMap<Iccid, String>,
    /// The profile whose APN is unserved, since when (scenario ms).
    bad: Option<(Iccid, i64)>,
    /// Closed spells on an unserved APN (scenario ms each).
    pub exposure: Vec<i64>,
    /// The agent took an unserved APN at least once.
    pub got_bad: bool,
}

impl AgentApns {
    /// The agent takes `apn` for `iccid` at scenario time `t`; `served`:
    /// whether that profile's carrier serves it. Whether the APN of that
    /// profile changed (a modem using the profile re-attaches with it).
    pub fn take(&mut self, iccid: &Iccid, apn: &str, served: bool, t: i64) -> bool {
        let changed = self
            .held
            .insert(iccid.clone(), apn.to_owned())
            .is_some_and(|before| before != apn);
        let on_this = self.bad.as_ref().is_some_and(|(i, _)| i == iccid);
        if served {
            if on_this {
                self.close(t);
            }
        } else if !on_this {
            self.close(t);
            self.bad = Some((iccid.clone(), t));
            self.got_bad = true;
        }
        changed
    }

    /// Whether `enabled`'s APN is one its carrier does not serve.
    pub fn on_bad(&self, enabled: &Iccid) -> bool {
        self.bad.as_ref().is_some_and(|(i, _)| i == enabled)
    }

    /// Ends the spell on an unserved APN at `t` (the run's end); whether
    /// one was open.
    pub fn close(&mut self, t: i64) -> bool {
        match self.bad.take() {
            Some((_, since)) => {
                self.exposure.push((t - since).max(0));
                true
            }
            None => false,
        }
    }
}

/// Before a rollout scenario runs, the target's fleet must hold no device
/// in a group its rollouts select: a rollout takes a whole group, and
/// devices of an earlier run (that no longer report) would be in its waves.
/// `devices` is the target's device list (every page).
pub fn check_groups_empty(scenario: &Scenario, devices: &[Value]) -> Result<(), SimError> {
    let selected: BTreeSet<&str> = scenario
        .rollouts
        .iter()
        .flat_map(|r| r.spec.groups.iter().map(String::as_str))
        .collect();
    let mut foreign: Vec<(&str, usize)> = Vec::new();
    for g in &selected {
        let n = devices.iter().filter(|d| d["group"] == *g).count();
        if n > 0 {
            foreign.push((g, n));
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    Err(SimError::Parameter(format!(
        "--target: its fleet already has devices in the groups the scenario's rollouts select ({}): \
         a rollout takes a whole group, and devices that do not report would stall its waves; \
         run {} against a target whose fleet has none there",
        foreign
            .iter()
            .map(|(g, n)| format!("{n} in {g:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        scenario.scenario.name
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn iccid(s: &str) -> Iccid {
        Iccid::from_body(s).unwrap()
    }

    #[test]
    fn the_rollouts_timings_are_divided_by_the_time_scale_with_a_floor() {
        let scenario = Scenario::builtin("rollout").unwrap();
        let planned = plan(&scenario, 200.0);
        assert_eq!(planned.len(), 2);
        for p in &planned {
            assert_eq!(p.at_ms, 300_000);
            assert_eq!(p.spec.soak, Span(3_000));
            assert_eq!(p.spec.max_wait, Span(9_000));
            ferrosim_fleet::rollout::Rollout::validate(&p.spec).unwrap();
        }
        assert_eq!(planned[0].spec.waves, vec![1, 10, 50, 100]);
        // Past the floor: 1 s, and the maximum wait never below the soak.
        for scale in [1e6, 1_000_000.0, 7_777.7] {
            for p in plan(&scenario, scale) {
                assert_eq!(p.spec.soak, Span(1_000));
                assert!(p.spec.max_wait >= p.spec.soak);
                ferrosim_fleet::rollout::Rollout::validate(&p.spec).unwrap();
            }
        }
        // Real time: the scenario's own.
        let real = plan(&scenario, 1.0);
        assert_eq!(real[0].spec.soak, Span::mins(10));
        assert_eq!(real[0].spec.max_wait, Span::mins(30));
    }

    #[test]
    fn an_unserved_apn_is_timed_until_a_served_one_replaces_it() {
        let (p, f) = (iccid("8944000000000000101"), iccid("8944100000000000101"));
        let mut apns = AgentApns::default();
        // The first setting: nothing changed, nothing bad.
        assert!(!apns.take(&p, "iot.carrier-a.example", true, 0));
        assert!(!apns.on_bad(&p));
        // The typo: changed, bad from 1 s.
        assert!(apns.take(&p, "iot.carrier-a.exmaple", false, 1_000));
        assert!(apns.on_bad(&p) && !apns.on_bad(&f));
        // The same again changes nothing and keeps the spell.
        assert!(!apns.take(&p, "iot.carrier-a.exmaple", false, 2_000));
        // The fallback's setting does not end it.
        assert!(!apns.take(&f, "m2m.carrier-b.example", true, 3_000));
        assert!(apns.on_bad(&p));
        // The rollback: served again at 61 s.
        assert!(apns.take(&p, "iot.carrier-a.example", true, 61_000));
        assert!(!apns.on_bad(&p));
        assert_eq!(apns.exposure, vec![60_000]);
        assert!(apns.got_bad);
        assert!(!apns.close(70_000));
        // Still on it at the end: closed there.
        assert!(apns.take(&p, "iot.carrier-a.exmaple", false, 80_000));
        assert!(apns.close(90_000));
        assert_eq!(apns.exposure, vec![60_000, 10_000]);
    }

    #[test]
    fn the_targets_view_and_decisions_give_the_outcome() {
        let view = json!({
            "id": 3, "name": "staged", "state": "halted", "wave": 0, "waves": [1, 10, 50, 100],
            "eligible": 15, "skipped": 0, "wave_sizes": [1],
            "gates": [{"checks": [
                {"metric": "registration_success", "wave": 1.0, "control": null, "bound": 0.95, "passed": true},
                {"metric": "data_path_success", "wave": 0.0, "control": null, "bound": 0.95, "passed": false}],
                "registrations": 1, "data_path_checks": 1, "verdict": "fail"}],
        });
        let o = outcome("staged", &view);
        assert_eq!(o.state, "halted");
        assert_eq!(o.waves_started, 1);
        assert_eq!(o.devices_changed, 1);
        assert_eq!(o.eligible, 15);
        assert_eq!(o.gates.len(), 1);
        assert_eq!(o.gates[0].verdict, "fail");
        assert_eq!(
            o.gates[0].failed,
            vec![("data_path_success".to_owned(), Some(0.0), 0.95)]
        );
        // Garbage gives no numbers, not a panic.
        let none = outcome("x", &json!("garbage"));
        assert_eq!((none.waves_started, none.devices_changed), (0, 0));
        let decisions = vec![
            json!({"rollout": 3, "device": "1", "what": {"decision": "roll_back"}}),
            json!({"rollout": 3, "device": "1", "what": {"decision": "roll_back"}}),
            json!({"rollout": 3, "device": "2", "what": {"decision": "roll_back"}}),
            json!({"rollout": 4, "device": "3", "what": {"decision": "roll_back"}}),
            json!({"rollout": 3, "device": "4", "what": {"decision": "wave_start"}}),
        ];
        assert_eq!(rolled_back(&decisions, 3), 2);
        assert_eq!(rolled_back(&decisions, 5), 0);
    }

    #[test]
    fn a_fleet_with_devices_in_a_rollouts_group_is_refused() {
        let scenario = Scenario::builtin("rollout").unwrap();
        check_groups_empty(&scenario, &[]).unwrap();
        check_groups_empty(&scenario, &[json!({"group": "meters"})]).unwrap();
        let e = check_groups_empty(
            &scenario,
            &[json!({"group": "east"}), json!({"group": "east"})],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("2 in \"east\""), "{e}");
    }
}
