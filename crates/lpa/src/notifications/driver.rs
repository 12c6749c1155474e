//! [`process_notifications`]: the tokio driver of [`NotificationDelivery`]
//! over an open [`Es10`] session and an [`Es9Client`].

use std::time::Duration;

use ferrosim_ids::Timestamp;

use super::{NotificationAction, NotificationDelivery, NotificationReport, RetryPolicy};
use crate::es9::Es9Client;
use crate::es10::{Es10, Es10Error};
use crate::transport::Transport;

/// Sends every pending notification (or only those with the given sequence
/// numbers) to its SM-DP+, removing each one acknowledged. Fails only when
/// the list of notifications cannot be read.
pub async fn process_notifications<T: Transport, C: Es9Client>(
    es10: &mut Es10<T>,
    es9: &C,
    only: Option<&[i64]>,
    policy: &RetryPolicy,
) -> Result<NotificationReport, Es10Error> {
    let mut machine = NotificationDelivery::new(es10.link(), only, *policy);
    loop {
        let Some(action) = machine.poll() else {
            return Err(Es10Error::bad(
                "ListNotification",
                "the notification delivery stalled without an answer to give",
            ));
        };
        match action {
            NotificationAction::Transmit(apdu) => {
                let response = es10.transport_mut().transmit(&apdu);
                machine.handle_apdu_response(response, Timestamp::now());
            }
            NotificationAction::Es9(call) => {
                let answer = call.request.send(es9, &call.address);
                match machine.poll_timeout() {
                    Some(deadline) => match tokio::time::timeout(until(deadline), answer).await {
                        Ok(response) => {
                            machine.handle_es9_response(call.id, response, Timestamp::now());
                        }
                        Err(_) => machine.handle_timeout(Timestamp::now().max(deadline)),
                    },
                    None => {
                        let response = answer.await;
                        machine.handle_es9_response(call.id, response, Timestamp::now());
                    }
                }
            }
            NotificationAction::WaitUntil(t) => {
                tokio::time::sleep(until(t)).await;
                machine.handle_timeout(Timestamp::now().max(t));
            }
            NotificationAction::Done(result) => return result,
        }
    }
}

/// How long from now until `t` (zero when past).
fn until(t: Timestamp) -> Duration {
    t.since(Timestamp::now())
}
