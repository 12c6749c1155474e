//! [`NotificationDelivery`]: delivery of the pending notifications as a
//! sans-IO state machine, like [`crate::download::Download`]: response
//! APDUs, ES9+ answers and the time go in ([`NotificationDelivery::handle_apdu_response`],
//! [`NotificationDelivery::handle_es9_response`], [`NotificationDelivery::handle_timeout`]),
//! [`NotificationAction`]s come out ([`NotificationDelivery::poll`]).
//!
//! ListNotification, then for each notification in sequence order:
//! RetrieveNotificationsList (by sequence number), handleNotification to its
//! address (retried with backoff while the failure is transient; an ES9+
//! call unanswered within the timeout counts as a transient failure), and
//! RemoveNotificationFromList once acknowledged.

use std::collections::VecDeque;
use std::time::Duration;

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es9::HandleNotificationRequest;
use ferrosim_ids::Timestamp;

use super::{
    Attempts, Delivered, NotificationFailure, NotificationReport, RetryPolicy, Undelivered,
};
use crate::activation_code::SmdpAddress;
use crate::download::DEFAULT_ES9_TIMEOUT;
use crate::es9::{Es9Call, Es9ClientError, Es9Request, Es9Response, function};
use crate::es10::function::{
    Es10Function, ListNotification, RemoveNotificationFromList, RetrieveNotificationsList,
};
use crate::es10::types::{NotificationMetadata, PendingNotification};
use crate::es10::{Es10Error, Es10Link, Exchange, Next};
use crate::transport::TransportError;

/// What the delivery wants done next.
#[derive(Debug)]
pub enum NotificationAction {
    /// Send this command APDU to the eUICC; answer with
    /// [`NotificationDelivery::handle_apdu_response`].
    Transmit(Vec<u8>),
    /// Make this ES9+ call; answer with [`NotificationDelivery::handle_es9_response`].
    Es9(Es9Call),
    /// Nothing to do until this time; then call [`NotificationDelivery::handle_timeout`].
    WaitUntil(Timestamp),
    /// Finished (handed out once): the report, or why the list of pending
    /// notifications could not be read.
    Done(Result<NotificationReport, Es10Error>),
}

/// Delivery of pending notifications (see the module documentation).
#[derive(Debug)]
pub struct NotificationDelivery {
    link: Es10Link,
    only: Option<Vec<i64>>,
    retry: RetryPolicy,
    es9_timeout: Duration,
    stage: Stage,
    waiting: Waiting,
    outbox: Option<NotificationAction>,
    queue: VecDeque<NotificationMetadata>,
    report: NotificationReport,
    next_call: u64,
}

#[derive(Debug)]
enum Stage {
    List,
    Retrieve {
        listed: NotificationMetadata,
    },
    Send {
        listed: NotificationMetadata,
        notification: PendingNotification,
        address: SmdpAddress,
        attempts: Attempts,
    },
    Remove {
        listed: NotificationMetadata,
        notification: PendingNotification,
        attempts: u32,
    },
    Finished,
}

#[derive(Debug)]
enum Waiting {
    Nothing,
    Apdu(Box<Exchange>),
    Es9 { id: u64, deadline: Timestamp },
    Until(Timestamp),
}

impl NotificationDelivery {
    /// Delivers every pending notification, or only those whose sequence
    /// numbers are in `only`, over `link` (the ISD-R's channel). The first
    /// action (ListNotification) is ready at once.
    pub fn new(link: Es10Link, only: Option<&[i64]>, retry: RetryPolicy) -> Self {
        let mut machine = Self {
            link,
            only: only.map(<[i64]>::to_vec),
            retry,
            es9_timeout: DEFAULT_ES9_TIMEOUT,
            stage: Stage::List,
            waiting: Waiting::Nothing,
            outbox: None,
            queue: VecDeque::new(),
            report: NotificationReport::default(),
            next_call: 0,
        };
        if let Err(e) = machine.send_es10(&ListNotification) {
            machine.finish(Err(e));
        }
        machine
    }

    /// Sets how long an ES9+ call may take before it counts as failed.
    pub fn with_es9_timeout(mut self, timeout: Duration) -> Self {
        self.es9_timeout = timeout;
        self
    }

    /// The next thing to do, or `None` while an answer is awaited (or after
    /// [`NotificationAction::Done`] was handed out).
    pub fn poll(&mut self) -> Option<NotificationAction> {
        if let Some(action) = self.outbox.take() {
            return Some(action);
        }
        match self.waiting {
            Waiting::Until(t) => Some(NotificationAction::WaitUntil(t)),
            _ => None,
        }
    }

    /// When [`NotificationDelivery::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.waiting {
            Waiting::Es9 { deadline, .. } => Some(deadline),
            Waiting::Until(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the delivery has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Finished)
    }

    /// Time passed: an unanswered call past its deadline fails (transiently),
    /// a wait that is over ends with the next attempt.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.waiting {
            Waiting::Es9 { id, deadline } if now >= deadline => {
                let address = match &self.stage {
                    Stage::Send { address, .. } => address.to_string(),
                    _ => String::new(),
                };
                let error = Es9ClientError::Timeout {
                    function: function::HANDLE_NOTIFICATION,
                    address,
                };
                self.handle_es9_response(id, Es9Response::HandleNotification(Err(error)), now);
            }
            Waiting::Until(t) if now >= t => {
                self.waiting = Waiting::Nothing;
                self.send_notification(now);
            }
            _ => {}
        }
    }

    /// The eUICC's response APDU (or the transport's failure) to the last
    /// [`NotificationAction::Transmit`].
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
            Ok(Next::Transmit(apdu)) => self.outbox = Some(NotificationAction::Transmit(apdu)),
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

    /// The answer to the ES9+ call `id` (answers to other calls are dropped).
    pub fn handle_es9_response(&mut self, id: u64, response: Es9Response, now: Timestamp) {
        let current = matches!(self.waiting, Waiting::Es9 { id: waited, .. } if waited == id);
        let Es9Response::HandleNotification(result) = response else {
            tracing::debug!(id, "ES9+ answer of another function dropped");
            return;
        };
        if !current {
            tracing::debug!(id, "late ES9+ answer dropped");
            return;
        }
        self.waiting = Waiting::Nothing;
        let Stage::Send {
            listed,
            notification,
            address,
            mut attempts,
        } = std::mem::replace(&mut self.stage, Stage::Finished)
        else {
            return;
        };
        let seq_number = listed.seq_number;
        match result {
            Ok(()) => {
                self.stage = Stage::Remove {
                    listed,
                    notification,
                    attempts: attempts.made(),
                };
                if let Err(e) = self.send_es10(&RemoveNotificationFromList { seq_number }) {
                    self.es10_done(Err(e), now);
                }
            }
            Err(error) => match attempts.retry_after(&self.retry, &error) {
                Some(wait) => {
                    tracing::info!(%address, attempt = attempts.made(), %error, "notification not delivered, retrying");
                    self.stage = Stage::Send {
                        listed,
                        notification,
                        address,
                        attempts,
                    };
                    if wait.is_zero() {
                        self.send_notification(now);
                    } else {
                        self.waiting = Waiting::Until(now.plus(wait));
                    }
                }
                None => {
                    tracing::warn!(seq = seq_number, %address, %error, "notification kept on the eUICC");
                    self.undelivered(
                        listed,
                        NotificationFailure::NotAcknowledged {
                            attempts: attempts.made(),
                            error,
                        },
                        now,
                    );
                }
            },
        }
    }

    fn es10_done(&mut self, data: Result<Vec<u8>, Es10Error>, now: Timestamp) {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::List => match data.and_then(ListNotification::decode) {
                Ok(mut pending) => {
                    pending.sort_by_key(|m| m.seq_number);
                    self.queue = pending
                        .into_iter()
                        .filter(|m| {
                            self.only
                                .as_ref()
                                .is_none_or(|only| only.contains(&m.seq_number))
                        })
                        .collect();
                    self.next(now);
                }
                Err(e) => self.finish(Err(e)),
            },
            Stage::Retrieve { listed } => {
                let seq = listed.seq_number;
                let found = match data.and_then(RetrieveNotificationsList::decode) {
                    Ok(found) => found.into_iter().find(|n| n.metadata.seq_number == seq),
                    Err(e) => {
                        return self.undelivered(listed, NotificationFailure::Retrieve(e), now);
                    }
                };
                let Some(notification) = found else {
                    return self.undelivered(listed, NotificationFailure::Vanished, now);
                };
                match SmdpAddress::new(&notification.metadata.address) {
                    Ok(address) => {
                        self.stage = Stage::Send {
                            listed,
                            notification,
                            address,
                            attempts: Attempts::new(&self.retry),
                        };
                        self.send_notification(now);
                    }
                    Err(e) => {
                        self.undelivered(listed, NotificationFailure::InvalidAddress(e), now);
                    }
                }
            }
            Stage::Remove {
                listed,
                notification,
                attempts,
            } => match data.and_then(RemoveNotificationFromList::decode) {
                Ok(()) => {
                    self.report.delivered.push(Delivered {
                        metadata: notification.metadata,
                        attempts,
                    });
                    self.next(now);
                }
                Err(e) => self.undelivered(listed, NotificationFailure::NotRemoved(e), now),
            },
            other => self.stage = other,
        }
    }

    /// Sends (again) the notification of the `Send` stage.
    fn send_notification(&mut self, now: Timestamp) {
        let Stage::Send {
            notification,
            address,
            attempts,
            ..
        } = &mut self.stage
        else {
            return;
        };
        attempts.start();
        let request = Es9Request::HandleNotification(HandleNotificationRequest {
            pending_notification: Base64(notification.raw.clone()),
        });
        let address = address.clone();
        self.next_call += 1;
        let id = self.next_call;
        self.waiting = Waiting::Es9 {
            id,
            deadline: now.plus(self.es9_timeout),
        };
        self.outbox = Some(NotificationAction::Es9(Es9Call {
            id,
            address,
            request,
        }));
    }

    fn undelivered(
        &mut self,
        metadata: NotificationMetadata,
        failure: NotificationFailure,
        now: Timestamp,
    ) {
        self.report
            .undelivered
            .push(Undelivered { metadata, failure });
        self.next(now);
    }

    /// The next notification, or the end.
    fn next(&mut self, now: Timestamp) {
        let Some(listed) = self.queue.pop_front() else {
            let report = std::mem::take(&mut self.report);
            return self.finish(Ok(report));
        };
        let retrieve = RetrieveNotificationsList {
            seq_number: Some(listed.seq_number),
        };
        self.stage = Stage::Retrieve { listed };
        if let Err(e) = self.send_es10(&retrieve) {
            self.es10_done(Err(e), now);
        }
    }

    fn send_es10<F: Es10Function>(&mut self, f: &F) -> Result<(), Es10Error> {
        let (exchange, first) = Exchange::store_data(self.link, &f.request()?)?;
        self.waiting = Waiting::Apdu(Box::new(exchange));
        self.outbox = Some(NotificationAction::Transmit(first));
        Ok(())
    }

    fn finish(&mut self, result: Result<NotificationReport, Es10Error>) {
        self.stage = Stage::Finished;
        self.waiting = Waiting::Nothing;
        self.outbox = Some(NotificationAction::Done(result));
    }
}
