//! An [`Es9Client`] that spreads the calls of one SM-DP+ over several
//! instances of it: the same SM-DP+ address in the protocol, different
//! `host:port` on the wire, a new instance for every call. It is how tests
//! and benchmarks show that any instance can serve any step of a download
//! (the state lives in the shared database, not in an instance).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Es9Client, Es9ClientError, Es9Function};
use crate::activation_code::SmdpAddress;

/// Sends each ES9+ call to the next of `targets` in turn (the address the
/// flow asks for is replaced); with no targets, calls go where the flow
/// says. Clones share one turn counter; for strict alternation within each
/// download, give every device its own [`RoundRobin::new`] over a clone of
/// the inner client (connections stay shared).
#[derive(Debug, Clone)]
pub struct RoundRobin<C> {
    inner: C,
    targets: Arc<Vec<SmdpAddress>>,
    next: Arc<AtomicUsize>,
}

impl<C: Es9Client> RoundRobin<C> {
    /// Calls go through `inner` to `targets` in turn, starting with the first.
    pub fn new(inner: C, targets: Vec<SmdpAddress>) -> Self {
        Self {
            inner,
            targets: Arc::new(targets),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The instances calls go to, in turn.
    pub fn targets(&self) -> &[SmdpAddress] {
        &self.targets
    }

    fn target<'a>(&'a self, address: &'a SmdpAddress) -> &'a SmdpAddress {
        if self.targets.is_empty() {
            return address;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        &self.targets[i]
    }
}

impl<C: Es9Client> Es9Client for RoundRobin<C> {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        self.inner.call::<F>(self.target(address), request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ferrosim_asn1::json::Base64;
    use ferrosim_asn1::json::es9::HandleNotificationRequest;

    use super::*;

    /// Records the address of every call and fails it (nothing to answer).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn hit(&self, address: &SmdpAddress) -> Es9ClientError {
            if let Ok(mut v) = self.0.lock() {
                v.push(address.to_string());
            }
            Es9ClientError::UnknownAddress(address.to_string())
        }
    }

    impl Es9Client for &Recorder {
        async fn call<F: Es9Function>(
            &self,
            address: &SmdpAddress,
            _: &F::Request,
        ) -> Result<F::Response, Es9ClientError> {
            Err(self.hit(address))
        }
    }

    fn addr(s: &str) -> SmdpAddress {
        SmdpAddress::new(s).expect("valid address")
    }

    #[tokio::test]
    async fn every_call_goes_to_the_next_instance() {
        let recorder = Recorder::default();
        let rr = RoundRobin::new(&recorder, vec![addr("localhost:1"), addr("localhost:2")]);
        let asked = addr("localhost:9");
        let notification = HandleNotificationRequest {
            pending_notification: Base64(vec![0x30, 0x00]),
        };
        for _ in 0..3 {
            let _ = rr.handle_notification(&asked, &notification).await;
        }
        let _ = rr.clone().handle_notification(&asked, &notification).await;
        let seen = recorder.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            ["localhost:1", "localhost:2", "localhost:1", "localhost:2"]
        );
    }

    #[tokio::test]
    async fn without_targets_calls_go_where_asked() {
        let recorder = Recorder::default();
        let rr = RoundRobin::new(&recorder, Vec::new());
        let notification = HandleNotificationRequest {
            pending_notification: Base64(vec![0x30, 0x00]),
        };
        let _ = rr
            .handle_notification(&addr("localhost:9"), &notification)
            .await;
        assert!(rr.targets().is_empty());
        let seen = recorder.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen, ["localhost:9"]);
    }
}
