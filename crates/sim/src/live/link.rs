//! The phone's data path to the SM-DP+ in a full-fidelity run: every ES9+
//! call goes over real HTTPS to the target, after the delay the scenario's
//! network model gives the phone's cell at that moment (two round trips,
//! a retransmission when a packet is lost, nothing at all through a cell
//! in a full outage), and is recorded with its real duration.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrosim_lpa::es9::Es9Function;
use ferrosim_lpa::{Es9Client, Es9ClientError, SmdpAddress};
use ferrosim_telemetry::{Function, StatusCode, StepStatus};
use rand::RngExt;
use rand::rngs::StdRng;

use super::Ctx;
use crate::network::{AreaIx, CarrierIx};

/// The retransmission time-out a lost packet costs (RFC 6298's initial RTO).
pub const RETRANSMISSION_MS: u64 = 1000;
/// How long a call through a cell in a full outage waits before it fails
/// (the ES9+ client's connect time-out).
pub const UNREACHABLE_AFTER_MS: u64 = 10_000;

/// One ES9+ call as the phone made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The function.
    pub function: Function,
    /// Its outcome.
    pub status: StepStatus,
    /// When it ended (ms from the phone's scan).
    pub end_ms: i64,
    /// How long it took, the injected network delay included (ms).
    pub duration_ms: u32,
    /// Of which the network model's delay (ms).
    pub injected_ms: u32,
    /// Request bytes (JSON body).
    pub request_bytes: u32,
}

/// An ES9+ client through one phone's modelled radio link.
pub struct Link<'a> {
    ctx: &'a Ctx,
    carrier: CarrierIx,
    area: AreaIx,
    started: Instant,
    rng: Mutex<StdRng>,
    calls: Mutex<Vec<Call>>,
}

impl<'a> Link<'a> {
    /// The link of a phone on `carrier` in `area` that scanned at `started`.
    pub fn new(
        ctx: &'a Ctx,
        carrier: CarrierIx,
        area: AreaIx,
        started: Instant,
        rng: StdRng,
    ) -> Self {
        Self {
            ctx,
            carrier,
            area,
            started,
            rng: Mutex::new(rng),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls made so far, in order.
    pub fn take_calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// The delay the network model puts before a call now, and whether the
    /// call gets through at all.
    fn delay(&self) -> (u64, bool) {
        let (latency, loss) = {
            let Ok(mut rng) = self.rng.lock() else {
                return (0, true);
            };
            self.ctx.data_path(self.carrier, self.area, &mut rng)
        };
        if loss >= 1000 {
            return (UNREACHABLE_AFTER_MS, false);
        }
        let mut ms = 2 * u64::from(latency);
        let lost = self
            .rng
            .lock()
            .map(|mut r| r.random_range(0..1000u16) < loss)
            .unwrap_or(false);
        if lost {
            ms += RETRANSMISSION_MS;
        }
        (ms, true)
    }
}

impl Es9Client for Link<'_> {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let begun = Instant::now();
        let request_bytes = serde_json::to_vec(request).map_or(0, |b| b.len() as u32);
        let (injected, through) = self.delay();
        tokio::time::sleep(Duration::from_millis(injected)).await;
        let result = if through {
            self.ctx.client.call::<F>(address, request).await
        } else {
            Err(Es9ClientError::Unreachable {
                function: F::NAME,
                address: address.to_string(),
                reason: "no data path: the phone's carrier is down in its area (simulated outage)"
                    .into(),
            })
        };
        let ended = Instant::now();
        let function = format!("es9plus.{}", F::NAME)
            .parse::<Function>()
            .unwrap_or(Function::Es9HandleNotification);
        let call = Call {
            function,
            status: status(result.as_ref().err()),
            end_ms: ms(ended.duration_since(self.started)),
            duration_ms: u32::try_from(ended.duration_since(begun).as_millis()).unwrap_or(u32::MAX),
            injected_ms: u32::try_from(injected).unwrap_or(u32::MAX),
            request_bytes,
        };
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        result
    }
}

/// Milliseconds of a duration, as `i64`.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The telemetry status of a call's outcome.
fn status(error: Option<&Es9ClientError>) -> StepStatus {
    match error {
        None => StepStatus::Ok,
        Some(Es9ClientError::Failed {
            subject_code,
            reason_code,
            ..
        }) => format!("{subject_code}/{reason_code}")
            .parse::<StatusCode>()
            .map_or(StepStatus::Unreachable, StepStatus::Failed),
        Some(_) => StepStatus::Unreachable,
    }
}
