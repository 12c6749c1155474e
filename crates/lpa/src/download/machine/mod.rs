//! [`Download`]: the profile download as a sans-IO state machine, in the
//! shape of quinn-proto's `Connection`. Inputs: the eUICC's response APDUs
//! ([`Download::handle_apdu_response`]), the SM-DP+'s ES9+ answers
//! ([`Download::handle_es9_response`]), the end user's decision
//! ([`Download::handle_consent`]) and the passing of time
//! ([`Download::handle_timeout`]), each with `now`. Outputs:
//! [`Download::poll`] hands out the next [`Action`] (send this APDU, make
//! this ES9+ call, ask the end user, wait until a time, done or failed with
//! the cancellation made), and [`Download::poll_timeout`] says when
//! `handle_timeout` is due.
//!
//! The machine does no I/O and reads no clock: a tokio driver
//! ([`super::download_profile`]), a simulator's event loop or a test moves
//! the bytes and the time. At most one thing is outstanding at a time (the
//! flow is sequential); an answer nobody waits for (an ES9+ answer after
//! its call timed out, an APDU response out of turn) is dropped.
//!
//! Time: an ES9+ call not answered within [`Download::with_es9_timeout`]
//! (90 s by default) fails with [`Es9ClientError::Timeout`], which cancels
//! the session with reason `timeout` (the installation result is retried
//! instead: a timeout is transient). Waits between notification attempts
//! are [`Action::WaitUntil`]. Step timings are computed from the `now`
//! values given (millisecond resolution).

mod transitions;

use std::ops::Range;
use std::time::Duration;

use ferrosim_asn1::json::es9::{AuthenticateClientResponse, InitiateAuthenticationResponse};
use ferrosim_ids::{Timestamp, TransactionId};

use super::outcome::{
    Cancellation, Consent, DownloadError, DownloadFailure, DownloadOutcome, ProfileMetadata, Step,
    StepTiming,
};
use super::{DownloadRequest, hash_confirmation_code};
use crate::activation_code::{ActivationCode, SmdpAddress};
use crate::es9::{Es9Call, Es9ClientError, Es9Request, Es9Response};
use crate::es10::commands::PrepareDownloadInput;
use crate::es10::function::{
    CancelSession, Es10Function, GetEuiccChallenge, LoadBoundProfilePackagePiece,
};
use crate::es10::types::{CancelSessionReason, DeviceInfo, InstallationResult};
use crate::es10::{Es10Error, Es10Link, Exchange, Next, bpp};
use crate::notifications::{Attempts, RetryPolicy};
use crate::transport::TransportError;

/// Default time an ES9+ call may take before the machine gives up on it:
/// longer than the HTTPS client's own 60 s, so that over HTTPS the client's
/// timeout is the one seen.
pub const DEFAULT_ES9_TIMEOUT: Duration = Duration::from_secs(90);

/// What the machine wants done next.
#[derive(Debug)]
pub enum Action {
    /// Send this command APDU to the eUICC; answer with
    /// [`Download::handle_apdu_response`].
    Transmit(Vec<u8>),
    /// Make this ES9+ call; answer with [`Download::handle_es9_response`].
    Es9(Es9Call),
    /// Show the profile metadata to the end user; answer with
    /// [`Download::handle_consent`].
    Confirm(ProfileMetadata),
    /// The SM-DP+ requires a confirmation code and the request has none:
    /// ask the end user for it; answer with
    /// [`Download::handle_confirmation_code`] (`None` when there is nobody
    /// to ask, which postpones the download and leaves the order open).
    ConfirmationCode(ProfileMetadata),
    /// Nothing to do until this time; then call [`Download::handle_timeout`].
    WaitUntil(Timestamp),
    /// The download ended (handed out once).
    Done(Box<Result<DownloadOutcome, DownloadError>>),
}

/// The profile download of SGP.22 3.1.3 as a state machine (see the module
/// documentation).
#[derive(Debug)]
pub struct Download {
    code: ActivationCode,
    confirmation_code: Option<String>,
    device_info: DeviceInfo,
    retry: RetryPolicy,
    es9_timeout: Duration,
    link: Es10Link,
    address: SmdpAddress,
    transaction_id: Option<TransactionId>,
    stage: Stage,
    waiting: Waiting,
    outbox: Option<Action>,
    /// The step in progress and when it started.
    current: Option<(Step, Timestamp)>,
    timings: Vec<StepTiming>,
    next_call: u64,
}

/// Where the flow is, with what it carries to the next stage.
#[derive(Debug)]
enum Stage {
    Challenge,
    Info1 {
        challenge: [u8; 16],
    },
    Initiate,
    AuthenticateServer {
        initiated: Box<InitiateAuthenticationResponse>,
    },
    /// The eUICC refused the SM-DP+: its answer goes to the SM-DP+.
    ReportAuthenticateError {
        code: i64,
    },
    AuthenticateClient,
    Confirm {
        authenticated: Box<AuthenticateClientResponse>,
        metadata: ProfileMetadata,
        cc_required: bool,
    },
    PrepareDownload {
        metadata: ProfileMetadata,
        transaction_id: TransactionId,
    },
    /// The eUICC refused PrepareDownload: its answer goes to the SM-DP+.
    ReportPrepareError {
        code: i64,
    },
    GetBoundProfilePackage {
        metadata: ProfileMetadata,
    },
    LoadBoundProfilePackage {
        metadata: ProfileMetadata,
        bpp: Vec<u8>,
        pieces: Vec<Range<usize>>,
        next: usize,
    },
    Notify {
        metadata: ProfileMetadata,
        result: InstallationResult,
        attempts: Attempts,
    },
    Remove {
        metadata: ProfileMetadata,
        result: InstallationResult,
    },
    CancelEuicc {
        failed: Failed,
        reason: CancelSessionReason,
        transaction_id: TransactionId,
    },
    CancelSmdp {
        failed: Failed,
        reason: CancelSessionReason,
    },
    Finished,
}

/// What the machine waits for.
#[derive(Debug)]
enum Waiting {
    Nothing,
    Apdu(Box<Exchange>),
    Es9 { id: u64, deadline: Timestamp },
    Consent,
    ConfirmationCode,
    Until(Timestamp),
}

/// A failure: where, what, and whether the session must be cancelled.
#[derive(Debug)]
struct Failed {
    step: Step,
    failure: DownloadFailure,
    cancel: Option<CancelSessionReason>,
}

impl Failed {
    /// A failure before any session exists.
    fn early(step: Step, failure: impl Into<DownloadFailure>) -> Self {
        Self {
            step,
            failure: failure.into(),
            cancel: None,
        }
    }

    /// A failure inside a session: cancel with the reason that fits.
    fn in_session(step: Step, failure: impl Into<DownloadFailure>) -> Self {
        let failure = failure.into();
        let reason = match (&failure, step) {
            (DownloadFailure::UserRejected, _) => CancelSessionReason::EndUserRejection,
            // Without its code the download is put off, not refused:
            // endUserRejection would end the order for good.
            (DownloadFailure::UserPostponed | DownloadFailure::ConfirmationCodeRequired, _) => {
                CancelSessionReason::Postponed
            }
            (DownloadFailure::Smdp(Es9ClientError::Timeout { .. }), _) => {
                CancelSessionReason::Timeout
            }
            (DownloadFailure::MetadataMismatch(_), _) => CancelSessionReason::MetadataMismatch,
            (DownloadFailure::Euicc(_), Step::LoadBoundProfilePackage) => {
                CancelSessionReason::LoadBppExecutionError
            }
            _ => CancelSessionReason::UndefinedReason,
        };
        Self {
            step,
            failure,
            cancel: Some(reason),
        }
    }

    /// A failure the other side already knows about: no cancellation.
    fn reported(step: Step, failure: DownloadFailure) -> Self {
        Self {
            step,
            failure,
            cancel: None,
        }
    }
}

impl Download {
    /// A download of what `request` names, talking to the ISD-R over `link`
    /// (a channel the caller opened and selected the ISD-R on). The first
    /// action (GetEUICCChallenge) is ready at once.
    pub fn new(request: &DownloadRequest<'_>, link: Es10Link, now: Timestamp) -> Self {
        let mut machine = Self {
            code: request.activation_code.clone(),
            confirmation_code: request.confirmation_code.map(str::to_owned),
            device_info: request.device_info.clone(),
            retry: request.notification_retry,
            es9_timeout: DEFAULT_ES9_TIMEOUT,
            link,
            address: request.activation_code.smdp_address().clone(),
            transaction_id: None,
            stage: Stage::Challenge,
            waiting: Waiting::Nothing,
            outbox: None,
            current: None,
            timings: Vec::new(),
            next_call: 0,
        };
        if let Err(e) = machine.start_es10(Step::GetEuiccChallenge, &GetEuiccChallenge, now) {
            machine.fail(Failed::early(Step::GetEuiccChallenge, e), now);
        }
        machine
    }

    /// Sets how long an ES9+ call may take (see the module documentation).
    pub fn with_es9_timeout(mut self, timeout: Duration) -> Self {
        self.es9_timeout = timeout;
        self
    }

    /// The next thing to do, or `None` while an answer is awaited (or
    /// after [`Action::Done`] was handed out).
    pub fn poll(&mut self) -> Option<Action> {
        if let Some(action) = self.outbox.take() {
            return Some(action);
        }
        match self.waiting {
            Waiting::Until(t) => Some(Action::WaitUntil(t)),
            _ => None,
        }
    }

    /// When [`Download::handle_timeout`] must be called: the deadline of the
    /// outstanding ES9+ call or the end of a wait.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.waiting {
            Waiting::Es9 { deadline, .. } => Some(deadline),
            Waiting::Until(t) => Some(t),
            _ => None,
        }
    }

    /// The step in progress (for drivers that time steps themselves).
    pub fn step(&self) -> Option<Step> {
        self.current.map(|(step, _)| step)
    }

    /// Whether the download has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Finished)
    }

    /// Time passed: an ES9+ call past its deadline fails with a timeout; a
    /// wait that is over ends.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.waiting {
            Waiting::Es9 { id, deadline } if now >= deadline => {
                let error = Es9ClientError::Timeout {
                    function: self.es9_function(),
                    address: self.address.to_string(),
                };
                tracing::info!(%error, "ES9+ call timed out");
                let response = match self.stage {
                    Stage::Initiate => Es9Response::InitiateAuthentication(Err(error)),
                    Stage::ReportAuthenticateError { .. } | Stage::AuthenticateClient => {
                        Es9Response::AuthenticateClient(Err(error))
                    }
                    Stage::ReportPrepareError { .. } | Stage::GetBoundProfilePackage { .. } => {
                        Es9Response::GetBoundProfilePackage(Err(error))
                    }
                    Stage::Notify { .. } => Es9Response::HandleNotification(Err(error)),
                    _ => Es9Response::CancelSession(Err(error)),
                };
                self.handle_es9_response(id, response, now);
            }
            Waiting::Until(t) if now >= t => {
                self.waiting = Waiting::Nothing;
                self.notify(now);
            }
            _ => {}
        }
    }

    /// The eUICC's response APDU (or the transport's failure) to the last
    /// [`Action::Transmit`].
    pub fn handle_apdu_response(
        &mut self,
        response: Result<Vec<u8>, TransportError>,
        now: Timestamp,
    ) {
        let Waiting::Apdu(exchange) = &mut self.waiting else {
            tracing::warn!("an APDU response nobody waits for is dropped");
            return;
        };
        let next = response
            .map_err(Es10Error::from)
            .and_then(|r| exchange.handle_response(r));
        match next {
            Ok(Next::Transmit(apdu)) => self.outbox = Some(Action::Transmit(apdu)),
            Ok(Next::Done(data)) => {
                self.waiting = Waiting::Nothing;
                self.es10_done(Ok(data), now);
            }
            Err(e) => {
                self.waiting = Waiting::Nothing;
                self.es10_done(Err(e), now);
            }
        }
    }

    /// The answer to the ES9+ call `id`. An answer to another call (one
    /// that timed out) or of another function is dropped, and the machine
    /// keeps waiting for the right one.
    pub fn handle_es9_response(&mut self, id: u64, response: Es9Response, now: Timestamp) {
        match self.waiting {
            Waiting::Es9 { id: waited, .. } if waited == id => {}
            _ => {
                tracing::debug!(id, function = response.name(), "late ES9+ answer dropped");
                return;
            }
        }
        if response.name() != self.es9_function() {
            tracing::warn!(
                id,
                function = response.name(),
                expected = self.es9_function(),
                "ES9+ answer of another function dropped"
            );
            return;
        }
        self.waiting = Waiting::Nothing;
        self.es9_done(response, now);
    }

    /// The end user's answer to [`Action::Confirm`].
    pub fn handle_consent(&mut self, consent: Consent, now: Timestamp) {
        if !matches!(self.waiting, Waiting::Consent) {
            tracing::warn!("a consent nobody asked for is dropped");
            return;
        }
        self.waiting = Waiting::Nothing;
        let Stage::Confirm {
            authenticated,
            metadata,
            cc_required,
        } = std::mem::replace(&mut self.stage, Stage::Finished)
        else {
            return;
        };
        let step = Step::ConfirmProfile;
        match consent {
            Consent::Accept => {}
            Consent::Reject => {
                return self.fail(Failed::in_session(step, DownloadFailure::UserRejected), now);
            }
            Consent::Postpone => {
                return self.fail(
                    Failed::in_session(step, DownloadFailure::UserPostponed),
                    now,
                );
            }
        }
        if cc_required && self.confirmation_code.is_none() {
            self.outbox = Some(Action::ConfirmationCode(metadata.clone()));
            self.waiting = Waiting::ConfirmationCode;
            self.stage = Stage::Confirm {
                authenticated,
                metadata,
                cc_required,
            };
            return;
        }
        self.prepare_download(&authenticated, metadata, cc_required, now);
    }

    /// The end user's answer to [`Action::ConfirmationCode`]: the code, or
    /// `None` when none can be had. Without a code the session is cancelled
    /// with reason `postponed`, so the order stays open for a later try
    /// with the code.
    pub fn handle_confirmation_code(&mut self, code: Option<String>, now: Timestamp) {
        if !matches!(self.waiting, Waiting::ConfirmationCode) {
            tracing::warn!("a confirmation code nobody asked for is dropped");
            return;
        }
        self.waiting = Waiting::Nothing;
        let Stage::Confirm {
            authenticated,
            metadata,
            cc_required,
        } = std::mem::replace(&mut self.stage, Stage::Finished)
        else {
            return;
        };
        match code.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()) {
            Some(code) => {
                self.confirmation_code = Some(code);
                self.prepare_download(&authenticated, metadata, cc_required, now);
            }
            None => self.fail(
                Failed::in_session(
                    Step::ConfirmProfile,
                    DownloadFailure::ConfirmationCodeRequired,
                ),
                now,
            ),
        }
    }
}

impl Download {
    /// The end user agreed (and gave the code when one is required):
    /// ES10b PrepareDownload.
    fn prepare_download(
        &mut self,
        authenticated: &AuthenticateClientResponse,
        metadata: ProfileMetadata,
        cc_required: bool,
        now: Timestamp,
    ) {
        let hash_cc = match (cc_required, self.confirmation_code.as_deref()) {
            (true, Some(cc)) => self
                .transaction_id
                .as_ref()
                .map(|tid| hash_confirmation_code(cc, tid)),
            _ => None,
        };
        self.record(now);
        let input = PrepareDownloadInput {
            smdp_signed2: &authenticated.smdp_signed2.0,
            smdp_signature2: &authenticated.smdp_signature2.0,
            hash_cc,
            smdp_certificate: &authenticated.smdp_certificate.0,
        };
        self.stage = Stage::PrepareDownload {
            metadata,
            transaction_id: authenticated.transaction_id.clone(),
        };
        if let Err(e) = self.start_es10(Step::PrepareDownload, &input, now) {
            self.fail(Failed::in_session(Step::PrepareDownload, e), now);
        }
    }
}

impl Download {
    /// A failure: cancel the session when it calls for it, else end.
    fn fail(&mut self, failed: Failed, now: Timestamp) {
        self.current = None;
        match (failed.cancel, self.transaction_id.clone()) {
            (Some(reason), Some(transaction_id)) => {
                let cancel = CancelSession {
                    transaction_id,
                    reason,
                };
                let started = self.start_es10(Step::CancelSessionEuicc, &cancel, now);
                self.stage = Stage::CancelEuicc {
                    failed,
                    reason,
                    transaction_id: cancel.transaction_id,
                };
                if let Err(e) = started {
                    self.es10_done(Err(e), now);
                }
            }
            _ => self.end_failed(failed, None),
        }
    }

    fn end_failed(&mut self, failed: Failed, cancellation: Option<Cancellation>) {
        if let Some(c) = &cancellation {
            tracing::warn!(step = %failed.step, error = %failed.failure, cancellation = %c, "download failed");
        }
        self.stage = Stage::Finished;
        self.waiting = Waiting::Nothing;
        self.current = None;
        self.outbox = Some(Action::Done(Box::new(Err(DownloadError {
            step: failed.step,
            failure: failed.failure,
            cancellation,
            timings: std::mem::take(&mut self.timings),
        }))));
    }

    /// Starts `step` with the ES10 function `f`.
    fn start_es10<F: Es10Function>(
        &mut self,
        step: Step,
        f: &F,
        now: Timestamp,
    ) -> Result<(), Es10Error> {
        self.current = Some((step, now));
        self.send_es10(f)
    }

    /// Sends the ES10 function `f` within the current step.
    fn send_es10<F: Es10Function>(&mut self, f: &F) -> Result<(), Es10Error> {
        let (exchange, first) = Exchange::store_data(self.link, &f.request()?)?;
        self.waiting = Waiting::Apdu(Box::new(exchange));
        self.outbox = Some(Action::Transmit(first));
        Ok(())
    }

    /// Starts `step` with an ES9+ call.
    fn start_es9(&mut self, step: Step, request: Es9Request, now: Timestamp) {
        self.current = Some((step, now));
        self.start_es9_call(request, now);
    }

    /// An ES9+ call whose duration is not a step of its own (reporting an
    /// eUICC refusal).
    fn start_es9_untimed(&mut self, request: Es9Request, now: Timestamp) {
        self.current = None;
        self.start_es9_call(request, now);
    }

    fn start_es9_call(&mut self, request: Es9Request, now: Timestamp) {
        self.next_call += 1;
        let id = self.next_call;
        self.waiting = Waiting::Es9 {
            id,
            deadline: now.plus(self.es9_timeout),
        };
        self.outbox = Some(Action::Es9(Es9Call {
            id,
            address: self.address.clone(),
            request,
        }));
    }

    /// Records the duration of the step in progress.
    fn record(&mut self, now: Timestamp) {
        if let Some((step, started)) = self.current.take() {
            self.timings.push(StepTiming {
                step,
                elapsed: now.since(started),
            });
        }
    }

    /// The SM-DP+ must answer with the session's transaction id.
    fn check_tid(&self, step: Step, received: &TransactionId) -> Result<(), Failed> {
        match self.transaction_id.as_ref() {
            Some(tid) if tid == received => Ok(()),
            _ => Err(Failed::in_session(
                step,
                DownloadFailure::InvalidSmdpAnswer(format!(
                    "transaction id `{received}` is not this session's"
                )),
            )),
        }
    }

    /// The function of the outstanding ES9+ call.
    fn es9_function(&self) -> &'static str {
        use crate::es9::function as f;
        match self.stage {
            Stage::Initiate => f::INITIATE_AUTHENTICATION,
            Stage::ReportAuthenticateError { .. } | Stage::AuthenticateClient => {
                f::AUTHENTICATE_CLIENT
            }
            Stage::ReportPrepareError { .. } | Stage::GetBoundProfilePackage { .. } => {
                f::GET_BOUND_PROFILE_PACKAGE
            }
            Stage::Notify { .. } => f::HANDLE_NOTIFICATION,
            _ => f::CANCEL_SESSION,
        }
    }
}

/// The pieces of a Bound Profile Package as ranges of it (see [`bpp::segments`]).
fn piece_ranges(bpp: &[u8]) -> Result<Vec<Range<usize>>, Es10Error> {
    let base = bpp.as_ptr() as usize;
    let pieces: Vec<Range<usize>> = bpp::segments(bpp)?
        .into_iter()
        .map(|piece| {
            let start = piece.as_ptr() as usize - base;
            start..start + piece.len()
        })
        .collect();
    if pieces.is_empty() {
        return Err(Es10Error::bad(
            LoadBoundProfilePackagePiece::NAME,
            "empty package",
        ));
    }
    Ok(pieces)
}
