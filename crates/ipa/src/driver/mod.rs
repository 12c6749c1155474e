//! The tokio driver of [`Ipa`]: it moves bytes and time and nothing else.
//! APDUs go to a blocking [`Transport`] (a virtual eUICC in the process, a
//! PC/SC reader, a modem), ESipa calls to an [`EsipaClient`] (HTTPS with
//! either binding: [`https::HttpsEsipa`]; or an eIM in the process with
//! feature `inprocess`), direct ES9+ calls to an [`Es9Client`], the state
//! to a [`StateStore`] (a JSON file: [`FileStore`]), waits to
//! `tokio::time::sleep`.
//!
//! [`run_session`] runs one session now (`ferrosim ipa poll`); [`run`]
//! runs sessions as they fall due until told to stop (`ferrosim ipa run`).

pub mod https;
#[cfg(feature = "inprocess")]
pub mod inprocess;
mod store;

use std::future::Future;
use std::time::Duration;

use ferrosim_ids::Timestamp;
use ferrosim_lpa::Transport;
use ferrosim_lpa::es9::{Es9Client, Es9Request, Es9Response};
use rand::CryptoRng;
use thiserror::Error;

pub use store::{FileStore, MemoryStore, StateStore, StoreError};

use crate::config::DownloadPath;
use crate::esipa::{EimReply, EsipaError, EsipaRequest};
use crate::machine::{Action, Ipa, SessionReport};

/// The eIM as the driver reaches it.
pub trait EsipaClient: Send + Sync {
    /// Sends an ESipa request; the eIM's answer.
    fn send(
        &self,
        request: &EsipaRequest,
    ) -> impl Future<Output = Result<EimReply, EsipaError>> + Send;

    /// Sends an ES9+ step of an indirect download (or a notification) for
    /// the eIM to relay; the SM-DP+'s answer as the eIM passes it on.
    fn relay(&self, request: &Es9Request) -> impl Future<Output = Es9Response> + Send;
}

/// Why the driver stopped (a session that fails on the network is not an
/// error of the driver: it is in the [`SessionReport`]).
#[derive(Debug, Error)]
pub enum DriverError {
    /// The state could not be written: nothing more may be done, a result
    /// could be lost.
    #[error("cannot persist the IPA state: {0}")]
    Persist(#[from] StoreError),
    /// The machine waits for nothing and does nothing (a bug, reported
    /// rather than hanging).
    #[error("the IPA stalled")]
    Stalled,
}

/// Runs one session now and returns its report.
pub async fn run_session<R, T, E, D, S>(
    ipa: &mut Ipa<R>,
    transport: &mut T,
    eim: &E,
    direct: &D,
    store: &mut S,
) -> Result<SessionReport, DriverError>
where
    R: CryptoRng,
    T: Transport,
    E: EsipaClient,
    D: Es9Client,
    S: StateStore,
{
    ipa.start_session(Timestamp::now());
    drive(ipa, transport, eim, direct, store).await
}

/// Runs sessions as they fall due, handing each report to `each`, until
/// `stop` completes (then the session in progress is finished first).
pub async fn run<R, T, E, D, S, F>(
    ipa: &mut Ipa<R>,
    transport: &mut T,
    eim: &E,
    direct: &D,
    store: &mut S,
    stop: impl Future<Output = ()>,
    mut each: F,
) -> Result<(), DriverError>
where
    R: CryptoRng,
    T: Transport,
    E: EsipaClient,
    D: Es9Client,
    S: StateStore,
    F: FnMut(&SessionReport),
{
    tokio::pin!(stop);
    loop {
        let wait = until(ipa.next_session());
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
        let report = run_session(ipa, transport, eim, direct, store).await?;
        each(&report);
    }
}

/// Moves the machine until its session is done.
async fn drive<R, T, E, D, S>(
    ipa: &mut Ipa<R>,
    transport: &mut T,
    eim: &E,
    direct: &D,
    store: &mut S,
) -> Result<SessionReport, DriverError>
where
    R: CryptoRng,
    T: Transport,
    E: EsipaClient,
    D: Es9Client,
    S: StateStore,
{
    loop {
        let Some(action) = ipa.poll() else {
            match ipa.poll_timeout() {
                Some(t) if ipa.in_session() => {
                    tokio::time::sleep(until(t)).await;
                    ipa.handle_timeout(Timestamp::now().max(t));
                    continue;
                }
                _ => return Err(DriverError::Stalled),
            }
        };
        match action {
            Action::Transmit(apdu) => {
                let response = transport.transmit(&apdu);
                ipa.handle_apdu_response(response, Timestamp::now());
            }
            Action::Esipa(call) => {
                let reply = eim.send(&call.request).await;
                ipa.handle_esipa_response(call.id, reply, Timestamp::now());
            }
            Action::Es9 { route, call } => {
                let response = match route {
                    DownloadPath::Direct => call.request.send(direct, &call.address).await,
                    DownloadPath::ViaEim => eim.relay(&call.request).await,
                };
                ipa.handle_es9_response(call.id, response, Timestamp::now());
            }
            Action::Persist(state) => store.save(&state)?,
            Action::SessionDone(report) => return Ok(*report),
        }
    }
}

/// How long from now until `t` (zero when past).
fn until(t: Timestamp) -> Duration {
    t.since(Timestamp::now())
}
