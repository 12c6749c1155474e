//! Tying what the SM-DP+ served to devices and activations.
//!
//! The HTTP layer sees each ES9+ call (function, status, duration, bytes and
//! the transaction id it names) but not which eUICC or order it serves; the
//! callback outbox sees each order's progress (EID and ICCID) but not the
//! calls. The [`Attributor`] joins them, off the request path:
//!
//! - a session's calls are tied to the eUICC and profile the session is
//!   bound to, asked of the SM-DP+'s store once per session, and for all
//!   the sessions of a batch of calls in one read ([`Attributor::prefetch`]; calls made
//!   before the binding, `initiateAuthentication`, wait for it; those of a
//!   session that never binds are counted as unattributed and dropped);
//! - the **activation** is the download of one profile by one eUICC: its
//!   correlation id is derived from the ICCID and the EID
//!   ([`activation_id`]), so every instance gives every call of it (all its
//!   download attempts) the same id, and the carrier (the profile's
//!   operator) comes from the order's progress events;
//! - the outbox adds what the calls cannot tell: the eUICC's installation
//!   result (decoded from the signed result the event carries) and the
//!   eligibility refusals of `authenticateClient`, whose session never binds;
//! - `handleNotification` of an enable, disable or delete names the profile:
//!   its device is the order's EID (asked of the store).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::order::{NotificationPoint, ProgressEvent};
use ferrosim_smdp::status::StatusCode as SmdpStatus;
use ferrosim_telemetry::{
    CorrelationId, Dictionary, Dims, Event, EventKind, Function, Interface, ProfileKey, Source,
    StatusCode, StepStatus, Sym, Timestamp,
};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::decode::{self, Notification};
use super::lookup::Lookup;

/// One ES2+/ES9+ call as the HTTP layer observed it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The function.
    pub function: Function,
    /// How it ended.
    pub status: StepStatus,
    /// When the request arrived.
    pub at: Timestamp,
    /// Time to answer.
    pub duration_ms: u32,
    /// Request and answer bytes, without Bound Profile Package bytes.
    pub signalling_bytes: u32,
    /// The answer of a successful `getBoundProfilePackage`.
    pub bpp_bytes: u32,
    /// The transaction id named by the answer (`initiateAuthentication`'s).
    pub tid: Option<TransactionId>,
    /// The request body: its transaction id or notification is read here,
    /// not on the request path.
    pub request: Bytes,
}

/// How long a session's calls wait for it to bind, and how long a bound
/// session is remembered (ES9+ sessions live minutes).
const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
/// Most profiles whose carrier is remembered; beyond, the cache starts over.
const MAX_CARRIER_CACHE: usize = 200_000;
/// Most sessions remembered at once; beyond, the oldest are forgotten.
const MAX_SESSIONS: usize = 100_000;
/// Most calls waiting for one session to bind.
const MAX_PARKED_PER_SESSION: usize = 8;

/// The activation a session or progress event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Activation {
    id: CorrelationId,
    device: Eid,
    carrier: Option<Sym>,
}

#[derive(Debug)]
enum Session {
    Waiting {
        since: Timestamp,
        calls: Vec<Call>,
    },
    Bound {
        since: Timestamp,
        activation: Activation,
    },
}

/// The correlation id of the activation of profile `iccid` by eUICC `eid`:
/// the first 8 bytes of a SHA-256 over both (never 0). Every instance
/// derives the same id for the same download, from what the session and
/// the order's progress events both carry, without reading the store.
pub fn activation_id(iccid: &Iccid, eid: &Eid) -> CorrelationId {
    let mut h = Sha256::new();
    h.update(b"ferrosim activation\0");
    h.update(iccid.as_str().as_bytes());
    h.update(b"\0");
    h.update(eid.to_string().as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    CorrelationId::new(u64::from_be_bytes(first))
        .unwrap_or(CorrelationId(std::num::NonZeroU64::MIN))
}

fn status_of(code: &SmdpStatus) -> StatusCode {
    format!("{}/{}", code.subject, code.reason)
        .parse()
        .unwrap_or_else(|()| decode::execution_error())
}

/// What an ES9+ call names, read from its request (or answer) once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// A download session: the call is one of its steps.
    Session(TransactionId),
    /// An enable, disable or delete notification about a profile.
    Profile {
        /// The profile.
        iccid: Iccid,
        /// What happened to it.
        change: ferrosim_telemetry::ProfileChange,
    },
    /// Nothing telemetry can tie to a device (or an ES2+ call).
    Nothing,
}

/// Reads what `call` names: the transaction id of its session (from the
/// answer of `initiateAuthentication`, the request of the others, the
/// installation result of `handleNotification`) or the profile of a
/// notification.
pub(crate) fn named(call: &Call) -> Named {
    if call.function.interface() != Interface::Es9Plus {
        return Named::Nothing;
    }
    if call.function == Function::Es9HandleNotification {
        return match decode::notification(&call.request) {
            Some(Notification::InstallationResult(tid)) => Named::Session(tid),
            Some(Notification::ProfileChange { iccid, change }) => Named::Profile { iccid, change },
            None => Named::Nothing,
        };
    }
    match call
        .tid
        .clone()
        .or_else(|| decode::request_tid(&call.request))
    {
        Some(tid) => Named::Session(tid),
        None => Named::Nothing,
    }
}

/// Joins calls and progress events into attributed [`Event`]s.
pub(crate) struct Attributor<L> {
    lookup: L,
    dict: Dictionary,
    smdp: Option<Sym>,
    sessions: HashMap<TransactionId, Session>,
    /// The carrier (operator) of each profile seen in a progress event or
    /// an order.
    carriers: HashMap<Iccid, Option<Sym>>,
    /// Session bindings read for the batch being attributed (`None`: not
    /// bound when read).
    prefetched: HashMap<TransactionId, Option<(Eid, Iccid)>>,
    /// Calls and notifications that could not be tied to a device.
    pub unattributed: u64,
}

impl<L: Lookup> Attributor<L> {
    /// An attributor naming this SM-DP+ `smdp` in the events' dimensions.
    pub(crate) fn new(lookup: L, dict: Dictionary, smdp: &str) -> Self {
        let smdp = dict.intern(smdp).ok();
        Self {
            lookup,
            dict,
            smdp,
            sessions: HashMap::new(),
            carriers: HashMap::new(),
            prefetched: HashMap::new(),
            unattributed: 0,
        }
    }

    /// Sessions remembered (waiting or bound).
    #[cfg(test)]
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn event(&self, a: &Activation, activation: bool, at: Timestamp, kind: EventKind) -> Event {
        Event {
            at,
            activation: activation.then_some(a.id),
            device: a.device,
            source: Source::Smdp,
            dims: Dims {
                carrier: a.carrier,
                smdp: self.smdp,
                ..Dims::default()
            },
            kind,
        }
    }

    fn step(&self, a: &Activation, activation: bool, c: &Call) -> Event {
        self.event(
            a,
            activation,
            c.at,
            EventKind::Step {
                function: c.function,
                status: c.status,
                duration_ms: c.duration_ms,
                signalling_bytes: c.signalling_bytes,
                bpp_bytes: c.bpp_bytes,
            },
        )
    }

    fn carrier_of(&mut self, iccid: &Iccid, operator: &OperatorId) -> Option<Sym> {
        if self.carriers.len() >= MAX_CARRIER_CACHE {
            self.carriers.clear();
        }
        let sym = self.dict.intern(operator.as_str()).ok();
        self.carriers.insert(iccid.clone(), sym);
        sym
    }

    fn activation(&self, device: Eid, iccid: &Iccid) -> Activation {
        Activation {
            id: activation_id(iccid, &device),
            device,
            carrier: self.carriers.get(iccid).copied().flatten(),
        }
    }

    /// Takes one observed call; appends the events it makes to `out`.
    #[cfg(test)]
    pub(crate) async fn call(&mut self, call: Call, out: &mut Vec<Event>) {
        let named = named(&call);
        self.attribute(call, named, out).await;
    }

    /// Whether a call of `function` on session `tid` would ask the store
    /// for the session's binding (it is not bound here yet, and the call is
    /// not the `initiateAuthentication` that opens it).
    pub(crate) fn needs_lookup(&self, function: Function, tid: &TransactionId) -> bool {
        function.interface() == Interface::Es9Plus
            && function != Function::Es9InitiateAuthentication
            && !matches!(self.sessions.get(tid), Some(Session::Bound { .. }))
    }

    /// Reads in one lookup the bindings of the sessions that the batch of
    /// `calls` (each call's function and what it names) needs, and forgets
    /// those read for the previous batch. Each batch's calls were answered
    /// before they were offered, so a session found unbound here stays
    /// unbound for them. Returns how many sessions it asked for.
    pub(crate) async fn prefetch<'a>(
        &mut self,
        calls: impl IntoIterator<Item = (Function, &'a Named)>,
    ) -> usize {
        self.prefetched.clear();
        let mut tids = Vec::new();
        for (function, named) in calls {
            if let Named::Session(tid) = named
                && self.needs_lookup(function, tid)
                && !self.prefetched.contains_key(tid)
            {
                self.prefetched.insert(tid.clone(), None);
                tids.push(tid.clone());
            }
        }
        if tids.is_empty() {
            return 0;
        }
        match self.lookup.sessions(&tids).await {
            Ok(bound) => self
                .prefetched
                .extend(bound.into_iter().map(|(t, b)| (t, Some(b)))),
            Err(e) => {
                // Each call asks on its own.
                self.prefetched.clear();
                warn!(error = %e, "telemetry: cannot read sessions");
            }
        }
        tids.len()
    }

    /// The binding of session `tid`: read in this batch's prefetch, else
    /// asked of the store.
    async fn binding(&self, tid: &TransactionId) -> Option<(Eid, Iccid)> {
        if let Some(known) = self.prefetched.get(tid) {
            return known.clone();
        }
        match self.lookup.session(tid).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "telemetry: cannot read a session");
                None
            }
        }
    }

    /// Takes one observed call and what it names ([`named`]); appends the
    /// events it makes to `out`.
    pub(crate) async fn attribute(&mut self, call: Call, named: Named, out: &mut Vec<Event>) {
        if call.function.interface() != Interface::Es9Plus {
            // ES2+ calls are the operator's, not a device's: they are in the
            // per-function families only.
            return;
        }
        let tid = match named {
            Named::Session(tid) => tid,
            Named::Profile { iccid, change } => {
                return self.profile_change(call, &iccid, change, out).await;
            }
            Named::Nothing => {
                self.unattributed += 1;
                return;
            }
        };
        if let Some(Session::Bound { activation, .. }) = self.sessions.get(&tid) {
            let a = *activation;
            out.push(self.step(&a, true, &call));
            return;
        }
        if call.function != Function::Es9InitiateAuthentication
            && let Some((eid, iccid)) = self.binding(&tid).await
        {
            let a = self.activation(eid, &iccid);
            if let Some(Session::Waiting { calls, .. }) = self.sessions.remove(&tid) {
                for c in &calls {
                    out.push(self.step(&a, true, c));
                }
            }
            out.push(self.step(&a, true, &call));
            self.remember(
                tid,
                Session::Bound {
                    since: call.at,
                    activation: a,
                },
            );
            return;
        }
        match self.sessions.get_mut(&tid) {
            Some(Session::Waiting { calls, .. }) if calls.len() < MAX_PARKED_PER_SESSION => {
                calls.push(call);
            }
            Some(_) => self.unattributed += 1,
            None => {
                let since = call.at;
                self.remember(
                    tid,
                    Session::Waiting {
                        since,
                        calls: vec![call],
                    },
                );
            }
        }
    }

    async fn profile_change(
        &mut self,
        call: Call,
        iccid: &Iccid,
        change: ferrosim_telemetry::ProfileChange,
        out: &mut Vec<Event>,
    ) {
        let order = match self.lookup.order(iccid).await {
            Ok(order) => order,
            Err(e) => {
                warn!(error = %e, "telemetry: cannot read an order");
                None
            }
        };
        let Some((device, operator)) = order.and_then(|o| Some((o.eid?, o.operator))) else {
            self.unattributed += 1;
            return;
        };
        self.carrier_of(iccid, &operator);
        let a = self.activation(device, iccid);
        // A profile's life on the device is not part of its activation.
        out.push(self.step(&a, false, &call));
        if call.status == StepStatus::Ok {
            out.push(self.event(
                &a,
                false,
                call.at,
                EventKind::Profile {
                    profile: ProfileKey::from(iccid),
                    change,
                },
            ));
        }
    }

    /// Takes one progress event of an order; appends the event it makes, if
    /// any, to `out`.
    pub(crate) async fn progress(&mut self, ev: &ProgressEvent, out: &mut Vec<Event>) {
        self.carrier_of(&ev.iccid, &ev.operator);
        let Some(device) = ev.eid else {
            return;
        };
        let kind = match (ev.point, ev.failure) {
            // An order that expires is not an attempt by its device.
            (NotificationPoint::EligibilityCheck, Some(code))
                if code != SmdpStatus::DOWNLOAD_ORDER_EXPIRED =>
            {
                EventKind::Step {
                    function: Function::Es9AuthenticateClient,
                    status: StepStatus::Failed(status_of(&code)),
                    duration_ms: 0,
                    signalling_bytes: 0,
                    bpp_bytes: 0,
                }
            }
            (NotificationPoint::BppInstallation, failure) => {
                let decoded = ev
                    .result_data
                    .as_deref()
                    .and_then(decode::installation_outcome);
                let outcome = match (decoded, failure) {
                    (Some(o), _) => o,
                    (None, None) => ferrosim_telemetry::EuiccOutcome::Installed,
                    (None, Some(_)) => return,
                };
                EventKind::Euicc {
                    profile: Some(ProfileKey::from(&ev.iccid)),
                    outcome,
                }
            }
            _ => return,
        };
        let a = self.activation(device, &ev.iccid);
        out.push(self.event(&a, true, ev.at, kind));
    }

    fn remember(&mut self, tid: TransactionId, session: Session) {
        if self.sessions.len() >= MAX_SESSIONS {
            let now = match &session {
                Session::Waiting { since, .. } | Session::Bound { since, .. } => *since,
            };
            self.expire(now);
        }
        if self.sessions.len() < MAX_SESSIONS {
            self.sessions.insert(tid, session);
        } else {
            self.unattributed += 1;
        }
    }

    /// Forgets sessions and orders older than their time to live; calls of
    /// sessions that never bound are counted as unattributed.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        let mut dropped = 0u64;
        self.sessions.retain(|_, s| {
            let (since, waiting) = match s {
                Session::Waiting { since, calls } => (*since, calls.len() as u64),
                Session::Bound { since, .. } => (*since, 0),
            };
            let keep = now.since(since) < SESSION_TTL;
            if !keep {
                dropped += waiting;
            }
            keep
        });
        self.unattributed += dropped;
    }
}

#[cfg(test)]
#[path = "attribute_tests.rs"]
mod tests;
