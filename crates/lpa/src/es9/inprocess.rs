//! ES9+ without HTTP: direct calls into a `ferrosim_smdp::Smdp` in the same
//! process, for the city-scale simulator and benchmarks where thousands of
//! devices download at once and TLS would only measure itself.
//!
//! Failures come back exactly as over HTTPS: [`Es9ClientError::Failed`] with
//! the SGP.22 status code the SM-DP+ would have put in the JSON header. The
//! time the SM-DP+ sees comes from a clock that tests can move.

use std::fmt;
use std::sync::Arc;

use ferrosim_smdp::store::Store;
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Es9Error, Smdp};

use super::{Es9Client, Es9ClientError, Es9Function};
use crate::activation_code::SmdpAddress;

/// The time source of an [`InProcessEs9`].
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// An [`Es9Client`] calling an in-process SM-DP+.
pub struct InProcessEs9<S> {
    smdp: Smdp<S>,
    clock: Clock,
}

impl<S: Store> fmt::Debug for InProcessEs9<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessEs9")
            .field("address", &self.smdp_address())
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for InProcessEs9<S> {
    fn clone(&self) -> Self {
        Self {
            smdp: self.smdp.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<S: Store> InProcessEs9<S> {
    fn smdp_address(&self) -> &str {
        &self.smdp.config().address
    }

    /// A client of `smdp` that tells it the system time.
    pub fn new(smdp: Smdp<S>) -> Self {
        Self::with_clock(smdp, Arc::new(Timestamp::now))
    }

    /// A client of `smdp` that tells it the time `clock` gives.
    pub fn with_clock(smdp: Smdp<S>, clock: Clock) -> Self {
        Self { smdp, clock }
    }

    /// The SM-DP+.
    pub fn smdp(&self) -> &Smdp<S> {
        &self.smdp
    }

    /// Refuses addresses other than the SM-DP+'s own.
    fn check(&self, address: &SmdpAddress) -> Result<Timestamp, Es9ClientError> {
        if self.smdp.config().is_our_address(address.as_str()) {
            Ok((self.clock)())
        } else {
            Err(Es9ClientError::UnknownAddress(address.to_string()))
        }
    }
}

/// The SGP.22 status of an SM-DP+ failure, as the JSON binding would carry it.
fn failed(function: &'static str) -> impl Fn(Es9Error) -> Es9ClientError {
    move |e| {
        let code = e.status();
        Es9ClientError::Failed {
            function,
            subject_code: code.subject.to_owned(),
            reason_code: code.reason.to_owned(),
            message: Some(e.to_string()),
        }
    }
}

impl<S: Store> Es9Client for InProcessEs9<S> {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let now = self.check(address)?;
        F::serve(&self.smdp, request, now)
            .await
            .map_err(failed(F::NAME))
    }
}
