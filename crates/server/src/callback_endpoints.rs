//! The health of operators' callback endpoints, as the callback worker sees
//! it (sans-IO: outcomes and `now` in, decisions and log lines out).
//!
//! A dead endpoint must cost neither CPU nor log volume: after a failure
//! (no connection, a timeout, 5xx or 429) nothing more is sent to it until
//! its retry time, which grows exponentially up to a cap; the callbacks
//! waiting for it are deferred to that time in the outbox. While it stays
//! down, one summary line per interval says how many attempts failed, why,
//! and when the next one is; its recovery is one line too.

use std::collections::HashMap;
use std::time::Duration;

use ferrosim_smdp::time::Timestamp;

/// How a delivery ended, as far as the endpoint's health is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx.
    Delivered,
    /// The endpoint is unreachable or overloaded (connection, timeout, 5xx, 429).
    EndpointDown(String),
    /// The endpoint answered but refused this callback (another 4xx...).
    Refused(String),
}

/// A line for the log, decided here so that its rate is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogLine {
    /// The endpoint has been failing: `failed` attempts since the last line.
    Down {
        /// Failed attempts since the previous summary.
        failed: u32,
        /// The last error.
        error: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The endpoint answers again after `failures` failed attempts.
    Recovered {
        /// Consecutive failed attempts before this success.
        failures: u32,
    },
}

#[derive(Debug, Default)]
struct Health {
    /// Consecutive failures.
    failures: u32,
    /// No attempt before this time.
    retry_at: Option<Timestamp>,
    /// Failures not yet reported.
    unreported: u32,
    /// When the last summary line was written.
    last_summary: Option<Timestamp>,
}

/// Every endpoint's health, keyed by URL.
#[derive(Debug)]
pub(crate) struct Endpoints {
    entries: HashMap<String, Health>,
    first_delay: Duration,
    max_delay: Duration,
    summary_every: Duration,
}

impl Endpoints {
    /// Backoff from `first_delay` doubling to `max_delay`; at most one summary
    /// line per endpoint per `summary_every`.
    pub(crate) fn new(first_delay: Duration, max_delay: Duration, summary_every: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            first_delay,
            max_delay: max_delay.max(first_delay),
            summary_every,
        }
    }

    /// `Some(time)` when nothing may be sent to `url` before `time`.
    pub(crate) fn blocked_until(&self, url: &str, now: Timestamp) -> Option<Timestamp> {
        self.entries
            .get(url)
            .and_then(|h| h.retry_at)
            .filter(|at| *at > now)
    }

    /// Records how a delivery to `url` ended. Returns when the callback may
    /// be tried again (for a failure) and a line to log, if one is due.
    pub(crate) fn record(
        &mut self,
        url: &str,
        outcome: &Outcome,
        now: Timestamp,
    ) -> (Option<Timestamp>, Option<LogLine>) {
        let health = self.entries.entry(url.to_owned()).or_default();
        match outcome {
            Outcome::Delivered => {
                let line = (health.failures > 0).then_some(LogLine::Recovered {
                    failures: health.failures,
                });
                *health = Health::default();
                (None, line)
            }
            Outcome::EndpointDown(error) | Outcome::Refused(error) => {
                health.failures = health.failures.saturating_add(1);
                health.unreported = health.unreported.saturating_add(1);
                let exp = health.failures.saturating_sub(1).min(30);
                let delay = self
                    .first_delay
                    .saturating_mul(1u32 << exp.min(20))
                    .min(self.max_delay);
                let retry_at = now.plus(delay);
                if matches!(outcome, Outcome::EndpointDown(_)) {
                    health.retry_at = Some(retry_at);
                }
                let due = health.last_summary.is_none_or(|at| {
                    now.millis().saturating_sub(at.millis())
                        >= i64::try_from(self.summary_every.as_millis()).unwrap_or(i64::MAX)
                });
                let line = due.then(|| {
                    let failed = health.unreported;
                    health.unreported = 0;
                    health.last_summary = Some(now);
                    LogLine::Down {
                        failed,
                        error: error.clone(),
                        retry_in: delay,
                    }
                });
                (Some(retry_at), line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn a_dead_endpoint_backs_off_to_the_cap_and_logs_once_per_interval() {
        let mut e = Endpoints::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let down = Outcome::EndpointDown("connection refused".into());
        let mut now = 0;
        let mut lines = 0;
        let mut delays = Vec::new();
        // 20 minutes of a dead endpoint, tried whenever it is allowed.
        while now < 20 * 60_000 {
            assert!(e.blocked_until("u", at(now)).is_none());
            let (retry, line) = e.record("u", &down, at(now));
            let retry = retry.unwrap();
            delays.push(retry.millis() - now);
            lines += usize::from(line.is_some());
            assert_eq!(e.blocked_until("u", at(now + 1)), Some(retry));
            now = retry.millis();
        }
        assert_eq!(
            &delays[..7],
            &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]
        );
        assert!(delays.iter().all(|d| *d <= 60_000));
        // ~25 attempts in 20 minutes, and at most one line a minute.
        assert!(delays.len() < 30, "{}", delays.len());
        assert!(lines <= 21, "{lines}");
        // Recovery is reported once, and resets the backoff.
        let (retry, line) = e.record("u", &Outcome::Delivered, at(now));
        assert_eq!(retry, None);
        assert!(matches!(line, Some(LogLine::Recovered { failures }) if failures > 20));
        assert!(e.blocked_until("u", at(now)).is_none());
        let (retry, _) = e.record("u", &down, at(now));
        assert_eq!(retry.unwrap().millis() - now, 1_000);
    }

    #[test]
    fn a_refused_callback_does_not_block_the_endpoint() {
        let mut e = Endpoints::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let (retry, line) = e.record("u", &Outcome::Refused("HTTP 400".into()), at(0));
        assert_eq!(retry, Some(at(1_000)));
        assert!(line.is_some());
        assert!(e.blocked_until("u", at(1)).is_none());
        // A second failure within the interval: no new line.
        let (_, line) = e.record("u", &Outcome::EndpointDown("timeout".into()), at(10));
        assert_eq!(line, None);
        assert!(e.blocked_until("v", at(10)).is_none());
    }
}
