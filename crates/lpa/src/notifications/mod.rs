//! Delivery of the eUICC's pending notifications (installation results,
//! enable, disable, delete) to the SM-DP+ each one names.
//!
//! The rule is: a notification leaves the eUICC only after its SM-DP+
//! acknowledged it. The logic is [`NotificationDelivery`], a sans-IO state
//! machine; [`process_notifications`] (feature `tokio`) drives it over an
//! [`crate::Es10`] session and an [`crate::Es9Client`]. Each is retrieved by sequence number, sent with ES9+
//! handleNotification (retried with exponential backoff while the failure
//! is transient), and removed with RemoveNotificationFromList once
//! acknowledged. One that still fails stays on the eUICC and is listed in
//! the [`NotificationReport`] with the reason, so it is never lost silently
//! and goes out on the next run.

use std::time::Duration;

use crate::activation_code::ActivationCodeError;
use crate::es9::Es9ClientError;
use crate::es10::Es10Error;
use crate::es10::types::NotificationMetadata;

/// How often and how patiently a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per notification (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting 0.5 s, 1 s, 2 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Attempts without waiting in between (tests, simulations).
    pub fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }
}

/// Where one notification stands in its attempts: how many were made and
/// how long to wait after the next failure. The download and notification
/// machines share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempts {
    made: u32,
    next_delay: Duration,
}

impl Attempts {
    /// No attempt yet.
    pub(crate) fn new(policy: &RetryPolicy) -> Self {
        Self {
            made: 0,
            next_delay: policy.first_delay,
        }
    }

    /// Counts an attempt being made.
    pub(crate) fn start(&mut self) {
        self.made = self.made.saturating_add(1);
    }

    /// Attempts made.
    pub(crate) fn made(&self) -> u32 {
        self.made
    }

    /// After a failed attempt: the wait before the next one, or `None` when
    /// the failure is definite or the attempts are used up. Waits double
    /// from `first_delay` up to `max_delay`.
    pub(crate) fn retry_after(
        &mut self,
        policy: &RetryPolicy,
        error: &Es9ClientError,
    ) -> Option<Duration> {
        if !error.is_transient() || self.made >= policy.attempts.max(1) {
            return None;
        }
        let wait = self.next_delay;
        self.next_delay = (wait * 2).min(policy.max_delay);
        Some(wait)
    }
}

/// A notification that was acknowledged and removed from the eUICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Its header.
    pub metadata: NotificationMetadata,
    /// Attempts it took.
    pub attempts: u32,
}

/// Why a notification is still on the eUICC.
#[derive(Debug, thiserror::Error)]
pub enum NotificationFailure {
    /// The eUICC did not give the notification out.
    #[error("cannot retrieve it from the eUICC: {0}")]
    Retrieve(Es10Error),
    /// The eUICC listed it but does not return it any more.
    #[error("the eUICC listed it but did not return it")]
    Vanished,
    /// Its address is not a usable SM-DP+ address.
    #[error("its address cannot be used: {0}")]
    InvalidAddress(ActivationCodeError),
    /// The SM-DP+ did not acknowledge it.
    #[error("not acknowledged after {attempts} attempt(s): {error}")]
    NotAcknowledged {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        error: Es9ClientError,
    },
    /// The SM-DP+ acknowledged it but the eUICC did not remove it: it will
    /// be sent again next time.
    #[error("acknowledged, but the eUICC did not remove it: {0}")]
    NotRemoved(Es10Error),
}

/// A notification that stays on the eUICC, and why.
#[derive(Debug)]
pub struct Undelivered {
    /// Its header.
    pub metadata: NotificationMetadata,
    /// What went wrong.
    pub failure: NotificationFailure,
}

/// What a [`NotificationDelivery`] did.
#[derive(Debug, Default)]
pub struct NotificationReport {
    /// Acknowledged and removed.
    pub delivered: Vec<Delivered>,
    /// Still on the eUICC.
    pub undelivered: Vec<Undelivered>,
}

impl NotificationReport {
    /// Whether every notification was delivered.
    pub fn is_complete(&self) -> bool {
        self.undelivered.is_empty()
    }
}

mod machine;
pub use machine::{NotificationAction, NotificationDelivery};

#[cfg(feature = "tokio")]
mod driver;
#[cfg(feature = "tokio")]
pub use driver::process_notifications;
