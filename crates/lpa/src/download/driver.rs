//! [`download_profile`]: the tokio driver of the [`Download`] machine over
//! an open [`Es10`] session (a blocking [`Transport`]) and an async
//! [`Es9Client`]. It moves bytes and time and nothing else: APDUs go to the
//! transport, ES9+ calls to the client (cut off at the machine's deadline),
//! the metadata to the `consent` callback, waits to `tokio::time::sleep`.
//!
//! It also times each step with the monotonic clock, more finely than the
//! machine's millisecond timestamps, and reports those durations.

use std::time::{Duration, Instant};

use ferrosim_ids::Timestamp;

use super::DownloadRequest;
use super::machine::{Action, Download};
use super::outcome::{
    Consent, DownloadError, DownloadFailure, DownloadOutcome, ProfileMetadata, Step, StepTiming,
};
use crate::es9::Es9Client;
use crate::es10::Es10;
use crate::transport::Transport;

/// Downloads and installs the profile the activation code points to.
/// `consent` sees the profile metadata and decides. When the SM-DP+ wants a
/// confirmation code and the request has none, the download is postponed
/// (the order stays open); see [`download_profile_asking`] to ask for it.
pub async fn download_profile<T, C, F>(
    es10: &mut Es10<T>,
    es9: &C,
    request: &DownloadRequest<'_>,
    consent: F,
) -> Result<DownloadOutcome, DownloadError>
where
    T: Transport,
    C: Es9Client,
    F: FnMut(&ProfileMetadata) -> Consent,
{
    download_profile_asking(es10, es9, request, consent, |_| None).await
}

/// [`download_profile`], asking `confirmation_code` for the code when the
/// SM-DP+ requires one and the request has none (`None`: postpone).
pub async fn download_profile_asking<T, C, F, A>(
    es10: &mut Es10<T>,
    es9: &C,
    request: &DownloadRequest<'_>,
    mut consent: F,
    mut confirmation_code: A,
) -> Result<DownloadOutcome, DownloadError>
where
    T: Transport,
    C: Es9Client,
    F: FnMut(&ProfileMetadata) -> Consent,
    A: FnMut(&ProfileMetadata) -> Option<String>,
{
    let clock = DriverClock::start();
    let mut machine = Download::new(request, es10.link(), clock.wall(clock.started))
        .with_es9_timeout(request.es9_timeout);
    let mut timer = StepTimer::default();
    // One clock reading per action: the end of one action is the start of
    // the next (a download makes ~70 of them, mostly APDUs), and the same
    // reading gives the machine its time.
    let mut mark = clock.started;
    loop {
        let step = machine.step();
        let Some(action) = machine.poll() else {
            return Err(DownloadError {
                step: step.unwrap_or(Step::GetEuiccChallenge),
                failure: DownloadFailure::Stalled,
                cancellation: None,
                timings: timer
                    .entries
                    .iter()
                    .map(|&(step, elapsed)| StepTiming { step, elapsed })
                    .collect(),
            });
        };
        let done = match action {
            Action::Transmit(apdu) => {
                let response = es10.transport_mut().transmit(&apdu);
                let done = Instant::now();
                machine.handle_apdu_response(response, clock.wall(done));
                done
            }
            Action::Es9(call) => {
                let answer = call.request.send(es9, &call.address);
                match machine.poll_timeout() {
                    Some(deadline) => {
                        let wait = deadline.since(clock.wall(Instant::now()));
                        let answer = tokio::time::timeout(wait, answer).await;
                        let done = Instant::now();
                        match answer {
                            Ok(response) => {
                                machine.handle_es9_response(call.id, response, clock.wall(done));
                            }
                            Err(_) => machine.handle_timeout(clock.wall(done).max(deadline)),
                        }
                        done
                    }
                    None => {
                        let response = answer.await;
                        let done = Instant::now();
                        machine.handle_es9_response(call.id, response, clock.wall(done));
                        done
                    }
                }
            }
            Action::Confirm(metadata) => {
                let consent = consent(&metadata);
                let done = Instant::now();
                machine.handle_consent(consent, clock.wall(done));
                done
            }
            Action::ConfirmationCode(metadata) => {
                let code = confirmation_code(&metadata);
                let done = Instant::now();
                machine.handle_confirmation_code(code, clock.wall(done));
                done
            }
            Action::WaitUntil(t) => {
                tokio::time::sleep(t.since(clock.wall(Instant::now()))).await;
                let done = Instant::now();
                machine.handle_timeout(clock.wall(done).max(t));
                done
            }
            Action::Done(result) => {
                return match *result {
                    Ok(mut outcome) => {
                        timer.refine(&mut outcome.timings);
                        Ok(outcome)
                    }
                    Err(mut e) => {
                        timer.refine(&mut e.timings);
                        Err(e)
                    }
                };
            }
        };
        if let Some(step) = step {
            timer.add(step, done.saturating_duration_since(mark));
        }
        mark = done;
    }
}

/// The time a download sees: the wall-clock time when it started plus the
/// monotonic time since, so that one monotonic reading per action serves
/// both the step timings and the machine, and the machine's time never goes
/// backwards during a download (even if the system clock is set back).
struct DriverClock {
    started: Instant,
    started_wall: Timestamp,
}

impl DriverClock {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            started_wall: Timestamp::now(),
        }
    }

    /// The wall-clock time at the monotonic reading `at`.
    fn wall(&self, at: Instant) -> Timestamp {
        self.started_wall
            .plus(at.saturating_duration_since(self.started))
    }
}

/// Wall-clock time per step, consecutive actions of one step summed.
#[derive(Debug, Default)]
struct StepTimer {
    entries: Vec<(Step, Duration)>,
}

impl StepTimer {
    fn add(&mut self, step: Step, elapsed: Duration) {
        match self.entries.last_mut() {
            Some((last, total)) if *last == step => *total += elapsed,
            _ => self.entries.push((step, elapsed)),
        }
    }

    /// Replaces the machine's durations (whole milliseconds) with the
    /// monotonic ones measured here, step by step in order; the machine's
    /// list says which steps count (those that completed).
    fn refine(&self, timings: &mut [StepTiming]) {
        let mut measured = self.entries.iter();
        for timing in timings {
            if let Some((_, elapsed)) = measured.by_ref().find(|(step, _)| *step == timing.step) {
                timing.elapsed = *elapsed;
            }
        }
    }
}
