//! The fleet API's operations as plain functions over a [`FleetDriver`]
//! (the HTTP handlers call them; the `ferrosim fleet` CLI calls the HTTP
//! API).

use ferrosim_eim::EimStore;
use ferrosim_fleet::action::{ActionId, ActionResult, Command, Failure, Outcome, PsmoError};
use ferrosim_fleet::catalog::MccMnc;
use ferrosim_fleet::device::{Mode, flags};
use ferrosim_fleet::report::{Registration, ReportKind};
use ferrosim_fleet::rollout::{Rollout, RolloutSpec};
use ferrosim_fleet::store::{DecisionQuery, FleetStore};
use ferrosim_fleet::{DeviceReport, DeviceSpec, DeviceState, Fleet, FleetError};
use ferrosim_ids::{Eid, Iccid, Timestamp};
use ferrosim_telemetry::{
    CorrelationId, Event, EventKind, ProfileChange, ProfileKey, RegistrationOutcome, Source,
};

use super::types::*;
use crate::api::ApiError;
use crate::fleet::{DriverError, FleetDriver};

/// Most inputs in one ingest call.
pub const MAX_BATCH: usize = 10_000;

/// A driver failure as an API error.
pub fn driver_error(e: DriverError) -> ApiError {
    match e {
        DriverError::Refused(FleetError::UnknownDevice(d)) => {
            ApiError::not_found(&format!("unknown device {d}"))
        }
        DriverError::Refused(FleetError::UnknownRollout(r)) => {
            ApiError::not_found(&format!("unknown rollout {r}"))
        }
        DriverError::Refused(e @ FleetError::DuplicateDevice(_))
        | DriverError::Refused(e @ FleetError::DuplicateRule(_))
        | DriverError::Refused(e @ FleetError::RolloutState { .. }) => {
            ApiError::conflict(&e.to_string())
        }
        DriverError::Refused(e) => ApiError::refused(&e.to_string()),
        DriverError::Busy => ApiError::conflict(&DriverError::Busy.to_string()),
        DriverError::Store(e) => ApiError::internal(&e),
    }
}

/// Adds a failover rule; answers it as stored.
pub async fn add_rule<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    rule: ferrosim_fleet::config::RuleConfig,
) -> Result<serde_json::Value, ApiError> {
    let name = rule.name.clone();
    driver
        .transact(|tx| tx.fleet.add_rule(rule.clone()).map(|_| ()))
        .await
        .map_err(driver_error)?;
    driver
        .read(|fleet, _| {
            fleet
                .catalog()
                .config()
                .rules
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| serde_json::to_value(r).ok())
        })
        .await
        .ok_or_else(|| ApiError::internal("the added rule is not in the catalog"))
}

/// Parses an EID from a path segment: `400` naming what is wrong with it.
pub fn parse_eid(text: &str) -> Result<Eid, ApiError> {
    text.trim()
        .parse()
        .map_err(|e| ApiError::bad_request(&format!("{text:?} is not an EID: {e}")))
}

/// The view of one device.
pub fn device_view(fleet: &Fleet, d: &DeviceState) -> DeviceView {
    let cat = fleet.catalog();
    let label = |t| cat.profile_label(t);
    DeviceView {
        eid: d.eid,
        group: cat.group(d.group).name.clone(),
        region: d.region.map(|r| cat.regions[r.index()].clone()),
        tags: cat
            .tags
            .iter()
            .enumerate()
            .filter(|(i, _)| d.tags & (1u64 << i) != 0)
            .map(|(_, t)| t.clone())
            .collect(),
        vendor: fleet.names().name(d.vendor).to_owned(),
        model: fleet.names().name(d.model).to_owned(),
        firmware: fleet.names().name(d.firmware).to_owned(),
        mode: match d.desired.mode {
            Mode::Primary => "primary",
            _ => "fallback",
        }
        .to_owned(),
        rule: {
            let rule = d.desired.rule.unwrap_or(cat.group(d.group).rule);
            // A rule another instance added is known once this one
            // caught up (the views do first).
            cat.rules
                .get(rule.index())
                .map_or_else(|| "?".to_owned(), |r| r.name.clone())
        },
        desired_primary: label(d.desired.primary),
        desired_fallback: d.desired.fallback.map(label),
        desired_spare: d.desired.spare.map(label),
        profiles: d
            .observed
            .iter()
            // A packed ICCID was validated when packed: every one unpacks.
            .filter_map(|p| Some((p, p.iccid.iccid()?)))
            .map(|(p, iccid)| ProfileView {
                iccid,
                profile_type: p.profile_type.map(label),
                enabled: p.has(flags::ENABLED),
                fallback_attribute: p.has(flags::FALLBACK_ATTR),
                fallback_refused: p.has(flags::FALLBACK_REFUSED),
                works: p.has(flags::WORKS),
                revoked: p.has(flags::REVOKED),
            })
            .collect(),
        in_flight: d.work.in_flight.map(|a| a.to_string()),
        converged: d.work.converged,
        switches_last_hour: d.switches.in_last_hour(Timestamp::now()),
        rollout: d.rollout.map(|m| m.rollout),
        capabilities: Some(capabilities_view(d)),
        registered_plmn: d.health.registered_plmn.get().map(|n| n.to_string()),
        roaming: !d.health.roaming_since.is_never(),
        apn: d
            .observed
            .apn_delivered
            .and_then(|(_, apn)| cat.apns.get(apn.index()))
            .map(|a| a.settings.apn.clone()),
    }
}

/// A device's capabilities and where they come from.
fn capabilities_view(d: &DeviceState) -> CapabilitiesView {
    fn bits(v: u8) -> Vec<u8> {
        (0..8).filter(|i| v & (1 << i) != 0).collect()
    }
    let c = &d.caps;
    let source = if d.work.caps_from_ipa {
        "ipa"
    } else if d.work.read_caps {
        "pending"
    } else {
        "registered"
    };
    CapabilitiesView {
        source: source.to_owned(),
        sgp32_version: c.sgp32_version.to_string(),
        fallback_supported: c.fallback_supported,
        rollback_supported: c.rollback_supported,
        ipa_features: bits(c.ipa_features),
        ipa_protocols: bits(c.ipa_protocols),
    }
}

/// The view of one rollout.
pub fn rollout_view(r: &Rollout) -> RolloutView {
    RolloutView {
        id: r.id,
        name: r.spec.name.clone(),
        state: r.state.name().to_owned(),
        wave: r.wave,
        waves: r.spec.waves.clone(),
        eligible: r.eligible,
        skipped: r.skipped,
        wave_sizes: r.members.iter().map(Vec::len).collect(),
        gates: r
            .gates
            .iter()
            .filter_map(|g| serde_json::to_value(g).ok())
            .collect(),
        spec: serde_json::to_value(&r.spec).unwrap_or_default(),
        created_ms: r.created.millis(),
    }
}

fn limit(l: Option<u32>) -> Result<u32, ApiError> {
    match l {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(&format!(
            "limit {n} must be 1..=1000"
        ))),
    }
}

/// A page of devices, from the store.
pub async fn list_devices<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    q: &PageQuery,
) -> Result<DeviceList, ApiError> {
    let n = limit(q.limit)?;
    driver.refresh().await.map_err(driver_error)?;
    let page = driver
        .store()
        .devices(q.after, n)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let next_after = (page.len() == n as usize)
        .then(|| page.last().map(|v| v.record.eid))
        .flatten();
    let devices = driver
        .read(|fleet, _| page.iter().map(|v| device_view(fleet, &v.record)).collect())
        .await;
    Ok(DeviceList {
        devices,
        next_after,
    })
}

/// One device, from the store.
pub async fn device<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    eid: &str,
) -> Result<DeviceView, ApiError> {
    let eid = parse_eid(eid)?;
    driver.refresh().await.map_err(driver_error)?;
    let d = driver
        .store()
        .device(&eid)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .ok_or_else(|| ApiError::not_found(&format!("unknown device {eid}")))?;
    Ok(driver.read(|fleet, _| device_view(fleet, &d.record)).await)
}

/// Registers a device.
pub async fn add_device<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    spec: DeviceSpec,
) -> Result<DeviceView, ApiError> {
    driver
        .transact(|tx| tx.fleet.add_device(&spec, tx.now))
        .await
        .map_err(driver_error)?;
    driver
        .read(|fleet, _| fleet.device(&spec.eid).map(|d| device_view(fleet, d)))
        .await
        .ok_or_else(|| ApiError::internal("a device just added is missing"))
}

/// Every rollout.
pub async fn rollouts<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
) -> Result<Vec<RolloutView>, ApiError> {
    let all = driver
        .store()
        .rollouts()
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(all.iter().map(|v| rollout_view(&v.record)).collect())
}

/// One rollout.
pub async fn rollout<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    id: u32,
) -> Result<RolloutView, ApiError> {
    let r = driver
        .store()
        .rollout(id)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .ok_or_else(|| ApiError::not_found(&format!("unknown rollout {id}")))?;
    Ok(rollout_view(&r.record))
}

/// Creates a rollout.
pub async fn create_rollout<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    spec: RolloutSpec,
) -> Result<RolloutView, ApiError> {
    let id = driver
        .transact(|tx| tx.fleet.create_rollout(spec.clone(), tx.now))
        .await
        .map_err(driver_error)?;
    driver
        .read(|fleet, _| fleet.rollout(id).map(rollout_view))
        .await
        .ok_or_else(|| ApiError::internal("a rollout just created is missing"))
}

/// `approve`, `pause`, `resume` or `abort`.
pub async fn rollout_command<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    id: u32,
    command: &str,
) -> Result<RolloutView, ApiError> {
    let run: fn(&mut Fleet, u32, Timestamp) -> Result<(), FleetError> = match command {
        "approve" => Fleet::approve_rollout,
        "pause" => Fleet::pause_rollout,
        "resume" => Fleet::resume_rollout,
        "abort" => Fleet::abort_rollout,
        other => {
            return Err(ApiError::not_found(&format!(
                "no rollout command {other:?} (approve, pause, resume, abort)"
            )));
        }
    };
    driver
        .transact(|tx| run(tx.fleet, id, tx.now))
        .await
        .map_err(driver_error)?;
    rollout(driver, id).await
}

/// Decision records.
pub async fn decisions<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    q: &DecisionsQuery,
) -> Result<DecisionList, ApiError> {
    let query = DecisionQuery {
        device: q.device,
        rollout: q.rollout,
        after_seq: q.after.unwrap_or(0),
        limit: limit(q.limit)?,
    };
    let list = driver
        .store()
        .decisions(&query)
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(DecisionList {
        decisions: list
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect(),
    })
}

/// The telemetry event of a report (for rollout gates).
fn report_event(fleet: &Fleet, r: &DeviceReport, now: Timestamp) -> Option<Event> {
    let d = fleet.device(&r.device)?;
    let profile = d.observed.enabled().and_then(|p| p.iccid.profile_key());
    let kind = match &r.kind {
        ReportKind::Registration { outcome, .. } => EventKind::Registration {
            profile,
            outcome: match outcome {
                Registration::Registered => RegistrationOutcome::Registered,
                Registration::Rejected { cause } => RegistrationOutcome::Rejected { cause: *cause },
                Registration::NoResponse => RegistrationOutcome::NoResponse,
            },
        },
        ReportKind::DataPath {
            latency_ms,
            loss_permille,
        } => EventKind::DataPath {
            latency_ms: *latency_ms,
            loss_permille: *loss_permille,
        },
        ReportKind::HandoverFailure { cause } => EventKind::HandoverFailure { cause: *cause },
        ReportKind::ProfileSwitch { enabled, .. } => EventKind::Profile {
            profile: ProfileKey::from_digits(enabled.as_str())?,
            change: ProfileChange::Enabled,
        },
    };
    Some(Event {
        at: ferrosim_telemetry::Timestamp(now.millis()),
        activation: CorrelationId::new(d.work.activation),
        device: r.device,
        source: Source::Device,
        dims: fleet.dims(&r.device)?,
        kind,
    })
}

/// Takes a batch of reports: all or none (a bad or unknown one refuses the
/// batch, naming it).
pub async fn ingest<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    reports: Vec<DeviceReport>,
) -> Result<Accepted, ApiError> {
    if reports.len() > MAX_BATCH {
        return Err(ApiError::bad_request(&format!(
            "{} reports: at most {MAX_BATCH} per call",
            reports.len()
        )));
    }
    for (i, r) in reports.iter().enumerate() {
        r.kind
            .validate()
            .map_err(|e| ApiError::bad_request(&format!("reports[{i}]: {e}")))?;
    }
    // Devices another instance registered are known after this.
    driver.refresh().await.map_err(driver_error)?;
    let unknown = driver
        .read(|fleet, _| {
            reports
                .iter()
                .position(|r| fleet.device(&r.device).is_none())
        })
        .await;
    if let Some(i) = unknown {
        return Err(ApiError::refused(&format!(
            "reports[{i}]: unknown device {}",
            reports[i].device
        )));
    }
    let n = reports.len();
    driver
        .transact(|tx| {
            for r in &reports {
                if let Some(e) = report_event(tx.fleet, r, tx.now) {
                    tx.record(e);
                }
                tx.fleet.handle_report(r, tx.now)?;
            }
            Ok(())
        })
        .await
        .map_err(driver_error)?;
    driver.wake();
    Ok(Accepted {
        accepted: n,
        ignored: 0,
    })
}

/// Maps a carrier's events onto device reports and takes them.
pub async fn carrier_events<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    carrier: &str,
    events: &[CarrierEvent],
) -> Result<Accepted, ApiError> {
    if events.len() > MAX_BATCH {
        return Err(ApiError::bad_request(&format!(
            "{} events: at most {MAX_BATCH} per call",
            events.len()
        )));
    }
    driver.refresh().await.map_err(driver_error)?;
    let known = driver
        .read(|fleet, _| fleet.catalog().carrier_id(carrier).is_some())
        .await;
    if !known {
        return Err(ApiError::not_found(&format!("unknown carrier {carrier:?}")));
    }
    let mut reports = Vec::new();
    let mut ignored = 0;
    for (i, e) in events.iter().enumerate() {
        let bad = |m: &str| ApiError::bad_request(&format!("events[{i}]: {m}"));
        let plmn = match &e.plmn {
            Some(p) => Some(MccMnc::parse(p).ok_or_else(|| bad("plmn is not an MCC-MNC"))?),
            None => None,
        };
        let device = match (e.eid, &e.iccid) {
            (Some(eid), _) => eid,
            (None, Some(iccid)) => {
                let packed = ferrosim_fleet::device::PackedIccid::new(iccid);
                driver
                    .read(|fleet, _| {
                        fleet
                            .devices()
                            .find(|d| d.observed.by_iccid(packed).is_some())
                            .map(|d| d.eid)
                    })
                    .await
                    .ok_or_else(|| {
                        ApiError::refused(&format!(
                            "events[{i}]: no device of the fleet has ICCID {iccid}"
                        ))
                    })?
            }
            (None, None) => return Err(bad("needs an iccid or an eid")),
        };
        let kind = match e.event.as_str() {
            "attach_accepted" => ReportKind::Registration {
                outcome: Registration::Registered,
                plmn,
            },
            "attach_rejected" => ReportKind::Registration {
                outcome: Registration::Rejected {
                    cause: e
                        .cause
                        .ok_or_else(|| bad("attach_rejected needs a cause"))?,
                },
                plmn,
            },
            "data_session_start" => ReportKind::DataPath {
                latency_ms: 0,
                loss_permille: 0,
            },
            "data_session_end" if e.abnormal => ReportKind::DataPath {
                latency_ms: 0,
                loss_permille: 1000,
            },
            "data_session_end" => {
                ignored += 1;
                continue;
            }
            other => {
                return Err(bad(&format!(
                    "event {other:?} is not attach_accepted, attach_rejected, \
                     data_session_start or data_session_end"
                )));
            }
        };
        reports.push(DeviceReport { device, kind });
    }
    let mut answer = ingest(driver, reports).await?;
    answer.ignored = ignored;
    Ok(answer)
}

/// Declares an outage or its end.
pub async fn outage<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    r: &OutageRequest,
) -> Result<(), ApiError> {
    driver
        .transact(|tx| {
            if r.declared {
                tx.fleet
                    .declare_outage(&r.carrier, r.region.as_deref(), tx.now)
            } else {
                tx.fleet.end_outage(&r.carrier, r.region.as_deref(), tx.now)
            }
        })
        .await
        .map_err(driver_error)
}

/// Commands waiting for a device's agent.
pub async fn agent_commands<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    eid: &str,
) -> Result<AgentCommands, ApiError> {
    let eid = parse_eid(eid)?;
    // Commands another instance issued are known after this.
    driver.refresh().await.map_err(driver_error)?;
    let list = driver
        .agent_commands(&eid)
        .await
        .ok_or_else(|| ApiError::not_found(&format!("unknown device {eid}")))?;
    driver
        .read(|fleet, _| {
            let commands = list
                .iter()
                .filter_map(|a| {
                    let (iccid, apn) = match &a.command {
                        Command::AgentApnConfig { iccid, apn } => (
                            iccid,
                            serde_json::to_value(&fleet.catalog().apns[apn.index()].settings).ok(),
                        ),
                        Command::AgentExecuteFallback { iccid }
                        | Command::AgentReturnFromFallback { iccid } => (iccid, None),
                        _ => return None,
                    };
                    Some(AgentCommand {
                        action: a.id.to_string(),
                        command: a.command.name().to_owned(),
                        iccid: iccid.clone(),
                        apn,
                    })
                })
                .collect();
            Ok(AgentCommands { commands })
        })
        .await
}

/// A device agent's result.
pub async fn agent_result<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    eid: &str,
    r: &AgentResult,
) -> Result<(), ApiError> {
    let eid = parse_eid(eid)?;
    let id = r
        .action
        .strip_prefix('a')
        .and_then(|n| n.parse().ok())
        .map(ActionId)
        .ok_or_else(|| {
            ApiError::bad_request(&format!("{:?} is not an action id (a<n>)", r.action))
        })?;
    let outcome = if r.ok {
        if r.error.is_some() {
            return Err(ApiError::bad_request("ok: true takes no error"));
        }
        Outcome::Done
    } else {
        let (error, retryable) = match r.error.as_deref() {
            Some("not_found") => (Some(PsmoError::NotFound), false),
            Some("wrong_state") => (Some(PsmoError::WrongState), false),
            Some("not_allowed") => (Some(PsmoError::NotAllowed), false),
            Some("unreachable") => (None, true),
            other => {
                return Err(ApiError::bad_request(&format!(
                    "error {other:?}: one of not_found, wrong_state, not_allowed, unreachable"
                )));
            }
        };
        Outcome::Failed {
            failure: error.map_or(Failure::Unreachable, |error| Failure::Psmo { error }),
            retryable,
        }
    };
    driver.refresh().await.map_err(driver_error)?;
    let waiting = driver
        .take_agent_command(&eid, id)
        .await
        .ok_or_else(|| ApiError::not_found(&format!("no command {} waits for {eid}", r.action)))?;
    let result = ActionResult {
        id: waiting,
        device: eid,
        outcome,
    };
    driver.answer(result).await;
    Ok(())
}

/// Revokes a profile the fleet ordered for a device: ES2+ `revokeProfile`
/// at its carrier's SM-DP+ (with the carrier's credentials), then the fleet
/// marks it revoked: the reconciler orders a fresh profile of its type,
/// enables it if the revoked one was in use, moves the fallback attribute,
/// and deletes the revoked profile once the device's enabled profile works
/// (its delete notification settles the revocation at the SM-DP+). A refusal
/// at the SM-DP+ changes nothing in the fleet.
pub async fn revoke_profile<F: FleetStore, E: EimStore>(
    driver: &FleetDriver<F, E>,
    eid: &str,
    iccid: &str,
    request: &RevokeRequest,
) -> Result<RevokeView, ApiError> {
    use ferrosim_smdp::end_of_life::{MAX_REASON, ReusePolicy, RevokeProfileRequest};
    let eid = parse_eid(eid)?;
    let iccid = Iccid::new(iccid.trim())
        .map_err(|e| ApiError::bad_request(&format!("{iccid:?} is not an ICCID: {e}")))?;
    if let Some(name) = &request.reuse_policy {
        ReusePolicy::parse(name, request.quarantine_seconds.unwrap_or(0))
            .map_err(|e| ApiError::bad_request(&format!("reuse_policy: {e}")))?;
    } else if request.quarantine_seconds.is_some() {
        return Err(ApiError::bad_request(
            "quarantine_seconds goes with reuse_policy \"quarantine\"",
        ));
    }
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON || r.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(&format!(
            "reason: at most {MAX_REASON} characters, no control characters"
        )));
    }
    let (client, carrier_name, label) = driver
        .read(|fleet, _| {
            let d = fleet
                .device(&eid)
                .ok_or_else(|| ApiError::not_found(&format!("unknown device {eid}")))?;
            let p = d
                .observed
                .by_iccid(ferrosim_fleet::device::PackedIccid::new(&iccid))
                .ok_or_else(|| {
                    ApiError::refused(&format!(
                        "profile {} is not on device {eid} as the fleet knows it",
                        iccid.as_str()
                    ))
                })?;
            let t = p.profile_type.ok_or_else(|| {
                ApiError::refused(&format!(
                    "profile {} was not ordered by the fleet: revoke it at its operator",
                    iccid.as_str()
                ))
            })?;
            if p.has(flags::REVOKED) {
                return Err(ApiError::conflict(&format!(
                    "profile {} is revoked already",
                    iccid.as_str()
                )));
            }
            let cat = fleet.catalog();
            let carrier = cat.carrier_of(t);
            Ok((
                driver.es2_client(cat, carrier),
                cat.carrier(carrier).name.clone(),
                cat.profile_label(t),
            ))
        })
        .await?;
    let client = client.ok_or_else(|| {
        ApiError::refused(&format!(
            "no ES2+ credentials for carrier {carrier_name}: revoke the profile at its SM-DP+"
        ))
    })?;
    let answer = client
        .revoke_profile(&RevokeProfileRequest {
            header: client.header(),
            iccid: iccid.clone(),
            reason: request.reason.clone(),
            reuse_policy: request.reuse_policy.clone(),
            quarantine_seconds: request.quarantine_seconds,
        })
        .await
        .map_err(|e| match e {
            crate::es2_client::Es2ClientError::Failed { .. } => {
                ApiError::refused(&format!("carrier {carrier_name} refused: {e}"))
            }
            other => ApiError::upstream(&format!("carrier {carrier_name}: {other}")),
        })?;
    driver
        .transact(|tx| tx.fleet.revoke_profile(&eid, &iccid).map(drop))
        .await
        .map_err(driver_error)?;
    Ok(RevokeView {
        eid,
        iccid,
        carrier: carrier_name,
        profile_type: label.clone(),
        end_of_life_state: answer.end_of_life_state,
        reuse_policy: answer.reuse_policy,
        quarantine_seconds: answer.quarantine_seconds,
        replacement: format!(
            "a fresh {label} profile is ordered and put in its place; the revoked one is deleted from the device once its enabled profile works"
        ),
    })
}
