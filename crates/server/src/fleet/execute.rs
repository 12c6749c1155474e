//! Carrying the fleet's actions out through the real components, and
//! turning what comes back into [`ActionResult`]s.
//!
//! - ES2+ `downloadOrder` / `confirmOrder` at the carrier's SM-DP+ with the
//!   [`Es2Client`](crate::es2_client::Es2Client) of the carrier; the action
//!   id is the `functionCallIdentifier`.
//! - eUICC packages (enable with rollback, delete, fallback attribute,
//!   listProfileInfo) and download triggers are queued at the eIM; the
//!   background task reads their results from the eIM's store.
//! - Device-agent commands (APN settings, ExecuteFallbackMechanism,
//!   ReturnFromFallback) wait for the agent to fetch them
//!   (`GET /api/v1/fleet/devices/{eid}/agent`) and to post their result.
//!
//! An action issued again with the same id while this instance still
//! carries it out is not started twice.

use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest};
use ferrosim_eim::{DataItem, DownloadTrigger, EimStore, ItemOutcome, Operation, PackageContent};
use ferrosim_fleet::action::{
    Action, ActionId, ActionResult, Command, Failure, ListedProfile, Outcome, PsmoError,
};
use ferrosim_fleet::store::FleetStore;
use ferrosim_ids::{Iccid, MatchingId, Timestamp};
use ferrosim_telemetry::{
    CorrelationId, EuiccOutcome, Event, EventKind, ProfileChange, ProfileKey, Source, StatusCode,
};
use tracing::{debug, warn};

use super::{FleetDriver, State};
use crate::es2_client::Es2ClientError;

/// Whether the device agent carries `command` out.
fn is_agent_command(command: &Command) -> bool {
    matches!(
        command,
        Command::AgentApnConfig { .. }
            | Command::AgentExecuteFallback { .. }
            | Command::AgentReturnFromFallback { .. }
    )
}

fn failed(action: &Action, failure: Failure, retryable: bool) -> ActionResult {
    ActionResult {
        id: action.id,
        device: action.device,
        outcome: Outcome::Failed { failure, retryable },
    }
}

impl<F: FleetStore, E: EimStore> FleetDriver<F, E> {
    /// Starts every action (after its decision was committed).
    pub(super) async fn dispatch(&self, st: &mut State, actions: Vec<Action>, now: Timestamp) {
        let mut immediate = Vec::new();
        for action in actions {
            let id = action.id;
            if st.es2_running.contains(&id) || st.eim_items.contains_key(&id) {
                debug!(action = %id, "fleet: already being carried out");
                continue;
            }
            match &action.command {
                Command::Es2DownloadOrder { carrier, .. }
                | Command::Es2ConfirmOrder { carrier, .. } => {
                    let Some(client) = self.es2_client(st.fleet.catalog(), *carrier) else {
                        warn!(action = %id, "fleet: no ES2+ credentials for the carrier");
                        immediate.push(failed(&action, Failure::Unreachable, true));
                        continue;
                    };
                    st.es2_running.insert(id);
                    let driver = self.clone();
                    let profile_type = match &action.command {
                        Command::Es2DownloadOrder { profile_type, .. } => {
                            Some(st.fleet.catalog().profile_type(*profile_type).name.clone())
                        }
                        _ => None,
                    };
                    tokio::spawn(async move {
                        let result = es2_call(&client, &action, profile_type).await;
                        driver.answer(result).await;
                    });
                }
                Command::AgentApnConfig { .. }
                | Command::AgentExecuteFallback { .. }
                | Command::AgentReturnFromFallback { .. } => {
                    let queue = st.agent.entry(action.device).or_default();
                    if !queue.iter().any(|a| a.id == id) {
                        queue.push(action);
                    }
                }
                _ => {
                    if let Some(item) = st.recovered.remove(&id) {
                        // Queued before a restart: its result is collected.
                        debug!(action = %id, item, "fleet: eIM item adopted");
                        st.eim_items.insert(id, (action.device, item, action));
                        continue;
                    }
                    let Some(eim) = &self.inner.eim else {
                        immediate.push(failed(&action, Failure::Unreachable, true));
                        continue;
                    };
                    let queued = match eim_content(&action, st) {
                        EimWork::Package(content) => {
                            eim.enqueue_package(&action.device, &content, &mut st.rng, now)
                                .await
                        }
                        EimWork::Data(items) => {
                            eim.enqueue_data_request(&action.device, items, &mut st.rng, now)
                                .await
                        }
                        EimWork::Download(code) => {
                            eim.enqueue_download(
                                &action.device,
                                &DownloadTrigger::ActivationCode(code),
                                &mut st.rng,
                                now,
                            )
                            .await
                        }
                    };
                    match queued {
                        Ok(q) => {
                            st.eim_items.insert(id, (action.device, q.item_id, action));
                        }
                        Err(e) => {
                            warn!(action = %id, error = %e, "fleet: the eIM refused the item");
                            immediate.push(failed(&action, Failure::Unreachable, true));
                        }
                    }
                }
            }
        }
        // `st` is the locked state: no `answer` (it locks) from here.
        if !immediate.is_empty() {
            st.answered.extend(immediate);
            self.inner.wake.notify_one();
        }
    }

    /// Takes the result of a command for a device's agent: one this
    /// instance keeps for the agent, or one another instance issued (an
    /// agent may reach any instance); `None` when no such command is in
    /// flight, or its result came already.
    pub async fn take_agent_command(
        &self,
        eid: &ferrosim_ids::Eid,
        id: ActionId,
    ) -> Option<ActionId> {
        let mut guard = self.inner.state.lock().await;
        let st = &mut *guard;
        if st.agent_done.contains(&id) {
            return None;
        }
        let kept = st.agent.get_mut(eid).and_then(|list| {
            list.iter()
                .position(|a| a.id == id)
                .map(|at| list.remove(at))
        });
        if st.agent.get(eid).is_some_and(Vec::is_empty) {
            st.agent.remove(eid);
        }
        let in_flight = kept.is_some()
            || st
                .fleet
                .in_flight()
                .any(|a| a.id == id && a.device == *eid && is_agent_command(&a.command));
        if !in_flight {
            return None;
        }
        st.agent_done.insert(id);
        Some(id)
    }

    /// The commands in flight for a device's agent (whichever instance
    /// issued them), less those whose result came; `None` for an unknown
    /// device.
    pub async fn agent_commands(&self, eid: &ferrosim_ids::Eid) -> Option<Vec<Action>> {
        let st = self.inner.state.lock().await;
        st.fleet.device(eid)?;
        Some(
            st.fleet
                .in_flight()
                .filter(|a| {
                    a.device == *eid
                        && is_agent_command(&a.command)
                        && !st.agent_done.contains(&a.id)
                })
                .cloned()
                .collect(),
        )
    }

    /// Hands a result to the background task (which feeds it to the fleet).
    pub async fn answer(&self, result: ActionResult) {
        {
            let mut st = self.inner.state.lock().await;
            st.es2_running.remove(&result.id);
            st.answered.push(result);
        }
        self.inner.wake.notify_one();
    }

    /// The results of queued eIM items that have one.
    pub(super) async fn collect_eim_results(&self) -> Vec<ActionResult> {
        let Some(eim) = &self.inner.eim else {
            return Vec::new();
        };
        let items: Vec<_> = {
            let st = self.inner.state.lock().await;
            st.eim_items.values().cloned().collect()
        };
        let mut out = Vec::new();
        for (eid, item_id, action) in items {
            let results = match eim.store().results(&eid).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "fleet: eIM results unreadable");
                    continue;
                }
            };
            let Some(r) = results.iter().find(|r| r.item_id == item_id) else {
                continue;
            };
            if matches!(action.command, Command::EimReadCapabilities) {
                let outcome = match &r.outcome {
                    ItemOutcome::DataReported(None) => match eim.device(&eid).await {
                        Ok(d) => match super::capabilities::read(&d.euicc) {
                            Some(capabilities) => Outcome::Capabilities { capabilities },
                            // Answered without EUICCInfo2: the IPA cannot
                            // tell; the registered capabilities stay.
                            None => Outcome::Failed {
                                failure: Failure::Psmo {
                                    error: PsmoError::Other(127),
                                },
                                retryable: false,
                            },
                        },
                        Err(e) => {
                            warn!(error = %e, "fleet: eIM device unreadable");
                            continue;
                        }
                    },
                    ItemOutcome::DataReported(Some(code)) => Outcome::Failed {
                        failure: Failure::Psmo {
                            error: PsmoError::Other(u8::try_from(*code).unwrap_or(u8::MAX)),
                        },
                        retryable: false,
                    },
                    other => eim_outcome(&action, other, None),
                };
                out.push(ActionResult {
                    id: action.id,
                    device: eid,
                    outcome,
                });
                continue;
            }
            let profiles = match &action.command {
                Command::EimListProfileInfo => eim.device(&eid).await.ok().map(|d| {
                    d.profiles
                        .profiles
                        .iter()
                        .map(|p| ListedProfile {
                            iccid: p.iccid.clone(),
                            enabled: p.enabled,
                            fallback_attribute: p.fallback,
                        })
                        .collect()
                }),
                _ => None,
            };
            out.push(ActionResult {
                id: action.id,
                device: eid,
                outcome: eim_outcome(&action, &r.outcome, profiles),
            });
        }
        out
    }
}

/// What an eIM result says the eUICC did, as a telemetry fact: a profile
/// installed, or enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ResultFact {
    /// A download ended installed.
    Installed(Iccid),
    /// An enable PSMO was executed.
    Enabled(Iccid),
}

/// The fact of a result of `command`, if it has one.
pub(super) fn result_fact(command: Option<&Command>, outcome: &Outcome) -> Option<ResultFact> {
    match (command?, outcome) {
        (_, Outcome::Installed { iccid }) => Some(ResultFact::Installed(iccid.clone())),
        (Command::EimEnable { iccid, .. }, Outcome::Done) => {
            Some(ResultFact::Enabled(iccid.clone()))
        }
        _ => None,
    }
}

/// The telemetry event of a fact, in the device's current activation (the
/// rollout gates count an activation a success from the installation, or
/// for a switch the enable, and the first registration on the profile).
pub(super) fn fact_event(
    fleet: &ferrosim_fleet::Fleet,
    result: &ActionResult,
    fact: &ResultFact,
    now: Timestamp,
) -> Option<Event> {
    let d = fleet.device(&result.device)?;
    let kind = match fact {
        ResultFact::Installed(iccid) => EventKind::Euicc {
            profile: ProfileKey::from_digits(iccid.as_str()),
            outcome: EuiccOutcome::Installed,
        },
        ResultFact::Enabled(iccid) => EventKind::Profile {
            profile: ProfileKey::from_digits(iccid.as_str())?,
            change: ProfileChange::Enabled,
        },
    };
    Some(Event {
        at: ferrosim_telemetry::Timestamp(now.millis()),
        activation: CorrelationId::new(d.work.activation),
        device: result.device,
        source: Source::Eim,
        dims: fleet.dims(&result.device)?,
        kind,
    })
}

enum EimWork {
    Package(PackageContent),
    Download(String),
    Data(&'static [DataItem]),
}

/// What [`Command::EimReadCapabilities`] asks the IPA for.
const CAPABILITY_ITEMS: &[DataItem] = &[
    DataItem::EuiccInfo2,
    DataItem::IpaCapabilities,
    DataItem::DeviceInfo,
];

fn eim_content(action: &Action, st: &State) -> EimWork {
    let op = match &action.command {
        Command::EimDownloadTrigger {
            activation_code, ..
        } => {
            let smdp = &st.fleet.catalog().smdps[activation_code.smdp.index()].address;
            return EimWork::Download(format!("1${smdp}${}", activation_code.matching_id.as_str()));
        }
        Command::EimEnable { iccid, rollback } => Operation::Enable {
            iccid: iccid.clone(),
            rollback: *rollback,
        },
        Command::EimDelete { iccid } => Operation::Delete {
            iccid: iccid.clone(),
        },
        Command::EimSetFallbackAttribute { iccid } => Operation::SetFallback {
            iccid: iccid.clone(),
        },
        Command::EimUnsetFallbackAttribute { .. } => Operation::UnsetFallback,
        Command::EimReadCapabilities => return EimWork::Data(CAPABILITY_ITEMS),
        _ => Operation::ListProfiles,
    };
    EimWork::Package(PackageContent::Psmos(vec![op]))
}

/// Maps the eIM's stored outcome of an item onto the fleet's.
fn eim_outcome(
    action: &Action,
    outcome: &ItemOutcome,
    profiles: Option<Vec<ListedProfile>>,
) -> Outcome {
    let fail = |failure, retryable| Outcome::Failed { failure, retryable };
    match outcome {
        ItemOutcome::Installed { ok: true, iccid } => {
            let expected = match &action.command {
                Command::EimDownloadTrigger { iccid, .. } => Some(iccid.clone()),
                _ => None,
            };
            match iccid.clone().or(expected) {
                Some(iccid) => Outcome::Installed { iccid },
                None => Outcome::Done,
            }
        }
        ItemOutcome::Installed { ok: false, .. } => fail(Failure::Download { reason: 127 }, true),
        ItemOutcome::DownloadFailed(reason) => fail(
            Failure::Download {
                reason: u8::try_from(*reason).unwrap_or(127),
            },
            true,
        ),
        ItemOutcome::Executed(codes) => match codes.first().copied().flatten() {
            None | Some(0) => match profiles {
                Some(profiles) => Outcome::ProfileList { profiles },
                None => Outcome::Done,
            },
            Some(code) => {
                // SGP.32 PSMO result codes: 1 iccidOrAidNotFound,
                // 2 profileNotInDisabledState / profileNotInEnabledState,
                // 3 disallowedByPolicy, 4 ... rollbackNotAllowed (enable);
                // the fallback attribute's differ: set 2 fallbackNotAllowed,
                // 3 fallbackProfileEnabled; unset 2 noFallbackAttribute,
                // 3 fallbackProfileEnabled.
                let error = match (&action.command, code) {
                    (_, 1) => PsmoError::NotFound,
                    (Command::EimSetFallbackAttribute { .. }, 2) => PsmoError::NotAllowed,
                    (
                        Command::EimSetFallbackAttribute { .. }
                        | Command::EimUnsetFallbackAttribute { .. },
                        3,
                    ) => PsmoError::WrongState,
                    (_, 2) => PsmoError::WrongState,
                    (_, 3 | 4) => PsmoError::NotAllowed,
                    (_, c) => PsmoError::Other(u8::try_from(c).unwrap_or(u8::MAX)),
                };
                fail(Failure::Psmo { error }, false)
            }
        },
        ItemOutcome::PackageError(_) | ItemOutcome::Rejected(_) | ItemOutcome::DataReported(_) => {
            fail(Failure::Unreachable, true)
        }
    }
}

/// One ES2+ call for an action.
async fn es2_call(
    client: &crate::es2_client::Es2Client,
    action: &Action,
    profile_type: Option<String>,
) -> ActionResult {
    let mut header = client.header();
    header.function_call_identifier = action.id.to_string();
    let eid = Some(action.device.to_string());
    let answer = match &action.command {
        Command::Es2DownloadOrder { .. } => client
            .download_order(&DownloadOrderRequest {
                header,
                eid,
                iccid: None,
                profile_type,
            })
            .await
            .and_then(|r| {
                Iccid::new(&r.iccid)
                    .map(|iccid| Outcome::OrderReserved { iccid })
                    .map_err(|e| Es2ClientError::BadResponse {
                        function: "downloadOrder",
                        reason: e.to_string(),
                    })
            }),
        Command::Es2ConfirmOrder { iccid, .. } => client
            .confirm_order(&ConfirmOrderRequest {
                header,
                iccid: iccid.as_str().to_owned(),
                eid,
                matching_id: None,
                confirmation_code: None,
                smds_address: None,
                release_flag: true,
            })
            .await
            .and_then(|r| {
                MatchingId::new(&r.matching_id)
                    .map(|matching_id| Outcome::OrderConfirmed { matching_id })
                    .map_err(|e| Es2ClientError::BadResponse {
                        function: "confirmOrder",
                        reason: e.to_string(),
                    })
            }),
        _ => Err(Es2ClientError::Setup("not an ES2+ command".into())),
    };
    let outcome = match answer {
        Ok(o) => o,
        Err(Es2ClientError::Failed {
            subject_code,
            reason_code,
            ..
        }) => {
            let code: Option<StatusCode> = format!("{subject_code}/{reason_code}").parse().ok();
            match code {
                // 8.1.1/3.8 "busy"-like refusals are retried by the fleet's
                // backoff; a refusal of the order itself is final.
                Some(code) => Outcome::Failed {
                    failure: Failure::Es2 { code },
                    retryable: false,
                },
                None => Outcome::Failed {
                    failure: Failure::Unreachable,
                    retryable: true,
                },
            }
        }
        Err(e) => {
            warn!(action = %action.id, error = %e, "fleet: ES2+ call failed");
            Outcome::Failed {
                failure: Failure::Unreachable,
                retryable: true,
            }
        }
    };
    ActionResult {
        id: action.id,
        device: action.device,
        outcome,
    }
}
