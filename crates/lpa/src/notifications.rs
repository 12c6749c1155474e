//! Delivery of the eUICC's pending notifications (installation results,
//! enable, disable, delete) to the SM-DP+ each one names.
//!
//! The rule is: a notification leaves the eUICC only after its SM-DP+
//! acknowledged it. Each is retrieved by sequence number, sent with ES9+
//! handleNotification (retried with exponential backoff while the failure
//! is transient), and removed with RemoveNotificationFromList once
//! acknowledged. One that still fails stays on the eUICC and is listed in
//! the [`NotificationReport`] with the reason, so it is never lost silently
//! and goes out on the next run.

use std::time::Duration;

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es9::HandleNotificationRequest;

use crate::activation_code::{ActivationCodeError, SmdpAddress};
use crate::es9::{Es9Client, Es9ClientError};
use crate::es10::types::NotificationMetadata;
use crate::es10::{Es10, Es10Error};
use crate::transport::Transport;

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

/// The result of sending one notification.
#[derive(Debug)]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// `Ok` when the SM-DP+ acknowledged; otherwise the last failure.
    pub result: Result<(), Es9ClientError>,
}

/// Sends one signed notification to `address`, retrying transient failures
/// as `policy` allows. A definite refusal by the SM-DP+ is not retried.
pub async fn deliver<C: Es9Client>(
    es9: &C,
    address: &SmdpAddress,
    notification: &[u8],
    policy: &RetryPolicy,
) -> Delivery {
    let request = HandleNotificationRequest {
        pending_notification: Base64(notification.to_vec()),
    };
    let attempts = policy.attempts.max(1);
    let mut delay = policy.first_delay;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match es9.handle_notification(address, &request).await {
            Ok(()) => {
                return Delivery {
                    attempts: attempt,
                    result: Ok(()),
                };
            }
            Err(e) if e.is_transient() && attempt < attempts => {
                tracing::info!(%address, attempt, error = %e, "notification not delivered, retrying");
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                delay = (delay * 2).min(policy.max_delay);
            }
            Err(e) => {
                return Delivery {
                    attempts: attempt,
                    result: Err(e),
                };
            }
        }
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

/// What [`process_notifications`] did.
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

/// Sends every pending notification (or only those with the given sequence
/// numbers) to its SM-DP+, removing each one acknowledged. Fails only when
/// the list of notifications cannot be read.
pub async fn process_notifications<T: Transport, C: Es9Client>(
    es10: &mut Es10<T>,
    es9: &C,
    only: Option<&[i64]>,
    policy: &RetryPolicy,
) -> Result<NotificationReport, Es10Error> {
    let mut pending = es10.list_notifications()?;
    pending.sort_by_key(|m| m.seq_number);
    let mut report = NotificationReport::default();
    for listed in pending {
        if only.is_some_and(|o| !o.contains(&listed.seq_number)) {
            continue;
        }
        let seq = listed.seq_number;
        let fail = |failure| Undelivered {
            metadata: listed.clone(),
            failure,
        };
        let notification = match es10.retrieve_notifications(Some(seq)) {
            Ok(found) => match found.into_iter().find(|n| n.metadata.seq_number == seq) {
                Some(n) => n,
                None => {
                    report.undelivered.push(fail(NotificationFailure::Vanished));
                    continue;
                }
            },
            Err(e) => {
                report
                    .undelivered
                    .push(fail(NotificationFailure::Retrieve(e)));
                continue;
            }
        };
        let address = match SmdpAddress::new(&notification.metadata.address) {
            Ok(a) => a,
            Err(e) => {
                report
                    .undelivered
                    .push(fail(NotificationFailure::InvalidAddress(e)));
                continue;
            }
        };
        let delivery = deliver(es9, &address, &notification.raw, policy).await;
        if let Err(error) = delivery.result {
            tracing::warn!(seq, %address, %error, "notification kept on the eUICC");
            report
                .undelivered
                .push(fail(NotificationFailure::NotAcknowledged {
                    attempts: delivery.attempts,
                    error,
                }));
            continue;
        }
        match es10.remove_notification(seq) {
            Ok(()) => report.delivered.push(Delivered {
                metadata: notification.metadata,
                attempts: delivery.attempts,
            }),
            Err(e) => report
                .undelivered
                .push(fail(NotificationFailure::NotRemoved(e))),
        }
    }
    Ok(report)
}
