//! `ferrosim order history <ICCID|MATCHING-ID>`: what happened to a
//! profile's orders, oldest first, from what the instance already stores
//! (see `ferrosim_store::OrderHistory`): ES2+ calls and admin commands from
//! the audit trail, each download step with the delivery of its callback to
//! the operator, and the notifications the device sent. Read-only.

use anyhow::bail;
use clap::Args;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::MatchingId;
use ferrosim_smdp::order::{NotificationPoint, ProfileRecord};
use ferrosim_smdp::store::{ProfileSelector, ProfileStore};
use ferrosim_store::{MAX_PAGE, OrderEvent, SqlStore};

/// `ferrosim order history …`
#[derive(Debug, Args)]
pub struct OrderHistoryArgs {
    /// The order: its profile's ICCID, or its matching id.
    #[arg(value_name = "ICCID|MATCHING-ID")]
    order: String,
    /// At most this many events of each kind (audit, download steps,
    /// device notifications): 1..=1000, the oldest first.
    #[arg(long, default_value_t = 200)]
    limit: u32,
}

/// Runs `ferrosim order history` on an opened store.
pub async fn order_history(store: &SqlStore, args: OrderHistoryArgs) -> anyhow::Result<()> {
    if args.limit == 0 || args.limit > MAX_PAGE {
        bail!("--limit {}: expected 1..={MAX_PAGE}", args.limit);
    }
    let profile = find(store, &args.order).await?;
    let history = store.order_history(&profile.iccid, args.limit).await?;
    let order = profile.order.as_ref();
    println!(
        "ICCID {}  operator {}  type {}  state {}  device {}",
        profile.iccid,
        profile.operator,
        profile.profile_type,
        profile.state,
        profile.device_state().unwrap_or("-")
    );
    if let Some(o) = order {
        println!(
            "order created {}  expires {}  eid {}  matching id {}",
            o.created_at.to_rfc3339(),
            o.expires_at.to_rfc3339(),
            o.eid.as_ref().map_or("-".into(), ToString::to_string),
            o.matching_id
                .as_ref()
                .map_or("-".into(), ToString::to_string),
        );
    }
    if history.events.is_empty() {
        println!("no recorded events");
    }
    for e in &history.events {
        println!("{}  {}", e.at().to_rfc3339(), describe(e));
    }
    if history.truncated {
        println!(
            "(more events than --limit {}: later ones are not shown)",
            args.limit
        );
    }
    Ok(())
}

/// The profile an argument names: an ICCID (19-20 digits, `F`-padded
/// accepted), else a matching id of a current order.
async fn find(store: &SqlStore, text: &str) -> anyhow::Result<ProfileRecord> {
    let as_iccid = Iccid::new(text).ok();
    if let Some(iccid) = &as_iccid
        && let Some(p) = store.profile(iccid).await?
    {
        return Ok(p);
    }
    let as_matching_id = MatchingId::new(text).ok();
    if let Some(m) = as_matching_id.clone()
        && let Some(p) = store.find_profile(&ProfileSelector::MatchingId(m)).await?
    {
        return Ok(p.record);
    }
    if as_iccid.is_none() && as_matching_id.is_none() {
        bail!(
            "{text:?} is neither an ICCID (19 or 20 digits) nor a matching id \
             (10..=64 of 0-9, A-Z, '-')"
        );
    }
    bail!("no profile has ICCID or matching id {text:?} (see `ferrosim order list`)")
}

/// One line about an event.
fn describe(e: &OrderEvent) -> String {
    match e {
        OrderEvent::Audited(a) => {
            let details = if a.details == "null" || a.details.is_empty() {
                String::new()
            } else {
                format!("  {}", a.details)
            };
            format!("{:<28} by {}{details}", a.action, a.actor)
        }
        OrderEvent::Progress(c) => {
            let step = format!("point {} {}", c.point, point_name(c.point));
            let outcome = c
                .failure
                .as_deref()
                .map_or("ok".to_owned(), |f| format!("failed {f}"));
            let delivery = match c.delivered_at {
                Some(t) => format!("callback delivered {}", t.to_rfc3339()),
                None => format!(
                    "callback pending ({} attempt(s){})",
                    c.attempts,
                    c.last_error
                        .as_deref()
                        .map_or(String::new(), |e| format!(", last error {e:?}"))
                ),
            };
            let eid = c.eid.as_ref().map_or("-".into(), ToString::to_string);
            format!("{step:<28} {outcome}  eid {eid}  {delivery}")
        }
        OrderEvent::Notification(n) => format!(
            "{:<28} seq {}  eid {}",
            format!("device: {}", n.operation),
            n.seq_number,
            n.eid.as_ref().map_or("-".into(), ToString::to_string)
        ),
    }
}

/// What a `notificationPointId` stands for.
fn point_name(id: i64) -> &'static str {
    match NotificationPoint::from_id(id) {
        Some(NotificationPoint::EligibilityCheck) => "(eligibility check)",
        Some(NotificationPoint::ConfirmationFailure) => "(confirmation code)",
        Some(NotificationPoint::BppDownload) => "(package download)",
        Some(NotificationPoint::BppInstallation) => "(installation)",
        Some(NotificationPoint::DeviceNotification) => "(device notification)",
        None => "",
    }
}
