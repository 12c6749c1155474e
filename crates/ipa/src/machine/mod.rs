//! [`Ipa`]: the IPA of SGP.32 as a sans-IO state machine, in the shape of
//! quinn-proto's `Connection` and of the LPA's [`ferrosim_lpa::Download`].
//!
//! Inputs: the eUICC's response APDUs ([`Ipa::handle_apdu_response`]), the
//! eIM's answers ([`Ipa::handle_esipa_response`]), the SM-DP+'s (or the
//! relaying eIM's) ES9+ answers ([`Ipa::handle_es9_response`]) and the
//! passing of time ([`Ipa::handle_timeout`]), each with `now`. Outputs:
//! [`Ipa::poll`] hands out the next [`Action`], [`Ipa::poll_timeout`] says
//! when `handle_timeout` is due. Randomness (the jitter of the polling
//! schedule and of the backoff) comes from the `rand::CryptoRng` given to
//! [`Ipa::new`].
//!
//! One **session** ([`Ipa::start_session`], or due by the schedule):
//!
//! ```text
//! [GetEID] ─► results still pending ─► ProvideEimPackageResult each ─► (acknowledged: RemoveNotificationFromList)
//!   ─► GetEimPackage(notifyStateChange, rPLMN) ─┬─ euiccPackageRequest ──────► LoadEuiccPackage ─┐
//!                                               ├─ ipaEuiccDataRequest ──────► ES10 reads ────────┤
//!                                               ├─ profileDownloadTrigger ───► Download (LPA) ────┤
//!                                               │        persist ◄──────────────────────────────┘
//!                                               │        ProvideEimPackageResult ─► acks ─► GetEimPackage again
//!                                               └─ noEimPackageAvailable ─► deliver notifications ─► done
//! ```
//!
//! A session that cannot reach the eIM (or gets garbage from it, or loses
//! the eUICC) ends with the error; the next one is scheduled after a
//! backoff with jitter ([`crate::Backoff`]). So does a session whose result
//! the eIM refuses (`provideEimPackageResultError`): the eIM has not stored
//! it, so the package it answers is still at the head of the device's queue
//! and polling would only fetch it again for the eUICC to refuse as a
//! replay; the kept result goes first in the next session. Results are persisted before
//! they are sent ([`crate::PendingState`]).

mod flow;
mod local;
mod report;
mod sub;

use std::collections::VecDeque;
use std::time::Duration;

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_lpa::es9::{Es9Call, Es9Response};
use ferrosim_lpa::es10::{Es10Link, Exchange};
use ferrosim_lpa::{Download, NotificationDelivery, TransportError};
use rand::CryptoRng;

pub use local::LocalOperation;
pub use report::{ItemReport, NotificationSummary, PackageOutcome, SessionError, SessionReport};

use crate::config::{DownloadPath, IpaConfig};
use crate::data::DataPlan;
use crate::es10::Command;
use crate::esipa::{EimReply, EsipaError, EsipaRequest};
use crate::pending::PendingState;

/// What the IPA wants done next.
#[derive(Debug)]
pub enum Action {
    /// Send this command APDU to the eUICC; answer with
    /// [`Ipa::handle_apdu_response`].
    Transmit(Vec<u8>),
    /// Send this ESipa request to the eIM; answer with
    /// [`Ipa::handle_esipa_response`].
    Esipa(EsipaCall),
    /// Make this ES9+ call, straight to the SM-DP+ or relayed by the eIM
    /// ([`DownloadPath`]); answer with [`Ipa::handle_es9_response`].
    Es9 {
        /// Where the call goes.
        route: DownloadPath,
        /// The call.
        call: Es9Call,
    },
    /// Write this state to stable storage before doing anything else.
    Persist(PendingState),
    /// The session ended (handed out once per session).
    SessionDone(Box<SessionReport>),
}

/// An ESipa request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsipaCall {
    /// Identifies the call; its answer goes back with it.
    pub id: u64,
    /// The request.
    pub request: EsipaRequest,
}

/// The IPA (see the module documentation).
#[derive(Debug)]
pub struct Ipa<R> {
    config: IpaConfig,
    link: Es10Link,
    rng: R,
    state: PendingState,
    eid: Option<Eid>,
    next_session: Timestamp,
    session: Option<Session>,
    outbox: VecDeque<Action>,
    next_call: u64,
}

/// One session in progress.
#[derive(Debug)]
struct Session {
    stage: Stage,
    waiting: Waiting,
    /// Pending results to offer the eIM in this session, by id.
    to_send: VecDeque<u64>,
    /// eIM items run in this session.
    items: usize,
    /// GetEimPackage said there is nothing more.
    drained: bool,
    /// Notifications were delivered (or not asked for).
    notified: bool,
    report: SessionReport,
}

/// Where a session is.
#[derive(Debug)]
enum Stage {
    /// Between steps.
    Idle,
    /// ES10c GetEID.
    ReadEid,
    /// A ProvideEimPackageResult of the pending result `id` is outstanding.
    Provide { id: u64 },
    /// RemoveNotificationFromList of acknowledged results.
    RemoveAcked { seqs: VecDeque<i64> },
    /// GetEimPackage is outstanding.
    Poll,
    /// LoadEuiccPackage of a package.
    LoadPackage { package: Vec<u8> },
    /// Reading what an IpaEuiccDataRequest asks for.
    GatherData {
        plan: Box<DataPlan>,
        current: Command,
    },
    /// A download trigger being carried out.
    Download {
        machine: Box<Download>,
        trigger: Box<sub::Trigger>,
    },
    /// Delivering the eUICC's pending notifications.
    Notifications { machine: Box<NotificationDelivery> },
    /// An operation the IPA started itself.
    Local { operation: LocalOperation },
}

/// What the session waits for.
#[derive(Debug)]
enum Waiting {
    Nothing,
    /// An ES10 exchange of the IPA's own.
    Apdu(Box<Exchange>),
    /// The ESipa call with this id.
    Esipa(u64),
    /// The sub-machine of the stage (download, notifications).
    Sub,
}

impl<R: CryptoRng> Ipa<R> {
    /// An IPA talking to the ISD-R over `link` (a channel the driver
    /// opened and selected the ISD-R on), starting from `state` (as last
    /// persisted; `PendingState::default()` the first time). The first
    /// session is due at once.
    pub fn new(
        config: IpaConfig,
        link: Es10Link,
        state: PendingState,
        rng: R,
        now: Timestamp,
    ) -> Self {
        let eid = config.eid.or(state.eid);
        Self {
            config,
            link,
            rng,
            state,
            eid,
            next_session: now,
            session: None,
            outbox: VecDeque::new(),
            next_call: 0,
        }
    }

    /// The state as it is (what the last [`Action::Persist`] carried, or
    /// newer).
    pub fn state(&self) -> &PendingState {
        &self.state
    }

    /// The eUICC's EID, once known.
    pub fn eid(&self) -> Option<Eid> {
        self.eid
    }

    /// Whether a session is in progress.
    pub fn in_session(&self) -> bool {
        self.session.is_some()
    }

    /// When the next session is due (while none is in progress).
    pub fn next_session(&self) -> Timestamp {
        self.next_session
    }

    /// The device's state changed in a way the eIM may not know (a local
    /// profile switch, a fallback, a reset): the next GetEimPackage carries
    /// `notifyStateChange` with `cause` (SGP.32 `StateChangeCause`).
    pub fn note_state_change(&mut self, cause: Option<i64>) {
        self.state.notify_state_change = true;
        self.state.state_change_cause = cause;
        self.outbox.push_back(Action::Persist(self.state.clone()));
    }

    /// Starts a session now, whatever the schedule (does nothing while one
    /// is in progress).
    pub fn start_session(&mut self, now: Timestamp) {
        if self.session.is_some() {
            return;
        }
        let to_send = self.state.results.iter().map(|r| r.id).collect();
        self.session = Some(Session {
            stage: Stage::Idle,
            waiting: Waiting::Nothing,
            to_send,
            items: 0,
            drained: false,
            notified: !self.config.deliver_notifications,
            report: SessionReport::new(now, self.eid),
        });
        self.next_step(now);
    }

    /// The next thing to do, or `None` while an answer (or the time in
    /// [`Ipa::poll_timeout`]) is awaited.
    pub fn poll(&mut self) -> Option<Action> {
        self.outbox.pop_front()
    }

    /// When [`Ipa::handle_timeout`] must be called: the next session's time
    /// between sessions, a sub-machine's deadline or wait within one.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.session {
            None => Some(self.next_session),
            Some(s) => match &s.stage {
                Stage::Download { machine, .. } => machine.poll_timeout(),
                Stage::Notifications { machine } => machine.poll_timeout(),
                _ => None,
            },
        }
    }

    /// Time passed: starts the session that is due, or lets a sub-machine
    /// give up on a call or end a wait.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let Some(session) = &mut self.session else {
            if now >= self.next_session {
                self.start_session(now);
            }
            return;
        };
        match &mut session.stage {
            Stage::Download { machine, .. } => machine.handle_timeout(now),
            Stage::Notifications { machine } => machine.handle_timeout(now),
            _ => return,
        }
        self.drive_sub(now);
    }

    /// The eUICC's response APDU (or the transport's failure) to the last
    /// [`Action::Transmit`].
    pub fn handle_apdu_response(
        &mut self,
        response: Result<Vec<u8>, TransportError>,
        now: Timestamp,
    ) {
        let Some(session) = &mut self.session else {
            tracing::warn!("an APDU response outside a session is dropped");
            return;
        };
        match (&mut session.waiting, &mut session.stage) {
            (Waiting::Apdu(exchange), _) => {
                let next = response
                    .map_err(ferrosim_lpa::Es10Error::from)
                    .and_then(|r| exchange.handle_response(r));
                match next {
                    Ok(ferrosim_lpa::es10::Next::Transmit(apdu)) => {
                        self.outbox.push_back(Action::Transmit(apdu));
                    }
                    Ok(ferrosim_lpa::es10::Next::Done(data)) => {
                        session.waiting = Waiting::Nothing;
                        self.es10_done(Ok(data), now);
                    }
                    Err(e) => {
                        session.waiting = Waiting::Nothing;
                        self.es10_done(Err(e), now);
                    }
                }
            }
            (Waiting::Sub, Stage::Download { machine, .. }) => {
                machine.handle_apdu_response(response, now);
                self.drive_sub(now);
            }
            (Waiting::Sub, Stage::Notifications { machine }) => {
                machine.handle_apdu_response(response, now);
                self.drive_sub(now);
            }
            _ => tracing::warn!("an APDU response nobody waits for is dropped"),
        }
    }

    /// The eIM's answer to the ESipa call `id` (an answer to another call
    /// is dropped).
    pub fn handle_esipa_response(
        &mut self,
        id: u64,
        response: Result<EimReply, EsipaError>,
        now: Timestamp,
    ) {
        let Some(session) = &mut self.session else {
            return;
        };
        if !matches!(session.waiting, Waiting::Esipa(waited) if waited == id) {
            tracing::debug!(id, "ESipa answer nobody waits for is dropped");
            return;
        }
        session.waiting = Waiting::Nothing;
        match response {
            Ok(reply) => self.eim_replied(reply, now),
            Err(e) => {
                tracing::warn!(error = %e, "ESipa exchange failed");
                self.finish(Some(SessionError::Eim(e)), now);
            }
        }
    }

    /// The answer to the ES9+ call `id` of [`Action::Es9`].
    pub fn handle_es9_response(&mut self, id: u64, response: Es9Response, now: Timestamp) {
        let Some(session) = &mut self.session else {
            return;
        };
        match &mut session.stage {
            Stage::Download { machine, .. } => machine.handle_es9_response(id, response, now),
            Stage::Notifications { machine } => machine.handle_es9_response(id, response, now),
            _ => {
                tracing::debug!(id, "ES9+ answer nobody waits for is dropped");
                return;
            }
        }
        self.drive_sub(now);
    }

    /// A fraction of `d` drawn uniformly between `low` and `high` per mille.
    fn jitter(&mut self, d: Duration, low: u64, high: u64) -> Duration {
        let span = high.saturating_sub(low) + 1;
        let permille = low + self.rng.next_u64() % span;
        let millis =
            (d.as_millis().min(u128::from(u64::MAX)) as u64).saturating_mul(permille) / 1000;
        Duration::from_millis(millis)
    }
}
