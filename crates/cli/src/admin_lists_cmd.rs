//! What an administrator looks at: `ferrosim order list` (filters and
//! paging), `ferrosim callbacks list` (the ES2+ callback outbox) and
//! `ferrosim notifications list` (what devices reported). Read-only.
//!
//! Each listing prints one line per row, oldest first, and when the page is
//! full a last line `next page: --after X` with the cursor to pass.
//!
//! ICCIDs, EIDs, operator ids and times are parsed by the argument parser
//! into their types, so a bad one is refused before the store is opened.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{
    CallbackQuery, CallbackStatus, MAX_PAGE, NotificationQuery, OrderQuery, SqlStore,
};

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::id_args;
use crate::instance::{Access, open_store};

/// The notification operations a device reports (SGP.22 `NotificationEvent`).
const OPERATIONS: [&str; 5] = ["install", "enable", "disable", "delete", "unknown"];

/// `ferrosim order list …`
#[derive(Debug, Args)]
pub struct OrderListArgs {
    /// Only orders whose profile is in this state.
    #[arg(long)]
    state: Option<String>,
    /// Only this operator's orders.
    #[arg(long, value_parser = id_args::operator)]
    operator: Option<OperatorId>,
    /// Only orders of this profile type.
    #[arg(long = "profile-type", alias = "type")]
    profile_type: Option<String>,
    /// Only orders created at or after this time (RFC 3339, or a date YYYY-MM-DD in UTC).
    #[arg(long, value_name = "TIME", value_parser = id_args::time)]
    since: Option<Timestamp>,
    /// Only orders created before this time (RFC 3339, or a date YYYY-MM-DD in UTC).
    #[arg(long, value_name = "TIME", value_parser = id_args::time)]
    until: Option<Timestamp>,
    /// At most this many orders (1..=1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// The next page: orders after this ICCID (the last one of the previous page).
    #[arg(long, value_name = "ICCID", value_parser = id_args::iccid)]
    after: Option<Iccid>,
}

/// `ferrosim callbacks …`
#[derive(Debug, Args)]
pub struct CallbacksArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: CallbacksCommand,
}

#[derive(Debug, Subcommand)]
enum CallbacksCommand {
    /// The ES2+ callback outbox: pending and delivered callbacks, attempts,
    /// last error, next attempt.
    List {
        /// Only `pending` or only `delivered` callbacks.
        #[arg(long)]
        status: Option<String>,
        /// Only callbacks to this operator.
        #[arg(long, value_parser = id_args::operator)]
        operator: Option<OperatorId>,
        /// Only callbacks about this profile.
        #[arg(long, value_parser = id_args::iccid)]
        iccid: Option<Iccid>,
        /// At most this many (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: callbacks after this id.
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
}

/// `ferrosim notifications …`
#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: NotificationsCommand,
}

#[derive(Debug, Subcommand)]
enum NotificationsCommand {
    /// Notifications devices sent to this SM-DP+ (enable, disable, delete...).
    List {
        /// Only this operation: install, enable, disable, delete.
        #[arg(long)]
        operation: Option<String>,
        /// Only about this profile.
        #[arg(long, value_parser = id_args::iccid)]
        iccid: Option<Iccid>,
        /// Only from this device.
        #[arg(long, value_parser = id_args::eid)]
        eid: Option<Eid>,
        /// Only received at or after this time (RFC 3339, or YYYY-MM-DD).
        #[arg(long, value_name = "TIME", value_parser = id_args::time)]
        since: Option<Timestamp>,
        /// Only received before this time (RFC 3339, or YYYY-MM-DD).
        #[arg(long, value_name = "TIME", value_parser = id_args::time)]
        until: Option<Timestamp>,
        /// At most this many (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: notifications after this id.
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
}

fn check_limit(limit: u32) -> anyhow::Result<u32> {
    if limit == 0 || limit > MAX_PAGE {
        bail!("--limit {limit}: expected 1..={MAX_PAGE}");
    }
    Ok(limit)
}

fn parse_id(text: Option<&str>) -> anyhow::Result<Option<i64>> {
    text.map(|t| {
        t.parse::<i64>().ok().filter(|n| *n >= 0).with_context(|| {
            format!("--after `{t}`: expected a row id (a number from an earlier page)")
        })
    })
    .transpose()
}

fn one_of<'a>(flag: &str, text: &str, valid: &[&'a str]) -> anyhow::Result<&'a str> {
    valid
        .iter()
        .find(|v| **v == text)
        .copied()
        .with_context(|| format!("{flag} `{text}`: expected one of {}", valid.join(", ")))
}

fn time_or_dash(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), Timestamp::to_rfc3339)
}

/// Runs `ferrosim order list` on an opened store.
pub async fn order_list(store: &SqlStore, args: OrderListArgs) -> anyhow::Result<()> {
    let state = args
        .state
        .as_deref()
        .map(|s| {
            ProfileState::parse(s).with_context(|| {
                let valid: Vec<&str> = ProfileState::ALL.iter().map(|st| st.as_str()).collect();
                format!("--state `{s}`: expected one of {}", valid.join(", "))
            })
        })
        .transpose()?;
    let query = OrderQuery {
        state,
        operator: args.operator,
        profile_type: args.profile_type,
        since: args.since,
        until: args.until,
        after: args.after,
        limit: check_limit(args.limit)?,
    };
    let orders = store.list_orders(&query).await?;
    for p in &orders {
        let o = p.order.as_ref();
        println!(
            "{}  {:<11} {:<16} {:<12} created={} expires={} eid={} matching_id={} downloads={} device={}",
            p.iccid,
            p.state,
            p.operator,
            p.profile_type,
            time_or_dash(o.map(|o| o.created_at)),
            time_or_dash(o.map(|o| o.expires_at)),
            o.and_then(|o| o.eid.as_ref())
                .map_or("-".into(), ToString::to_string),
            o.and_then(|o| o.matching_id.as_ref())
                .map_or("-".into(), ToString::to_string),
            o.map_or(0, |o| o.download_attempts),
            p.device_state().unwrap_or("-"),
        );
    }
    if orders.len() == query.limit as usize
        && let Some(last) = orders.last()
    {
        println!("next page: --after {}", last.iccid);
    }
    Ok(())
}

/// Runs `ferrosim callbacks`.
pub fn run_callbacks(args: CallbacksArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    let CallbacksCommand::List {
        status,
        operator,
        iccid,
        limit,
        after,
    } = args.command;
    let status = status
        .as_deref()
        .map(|s| {
            let valid: Vec<&str> = CallbackStatus::ALL.iter().map(|c| c.as_str()).collect();
            one_of("--status", s, &valid).map(CallbackStatus::parse)
        })
        .transpose()?
        .flatten();
    let query = CallbackQuery {
        status,
        operator,
        iccid,
        after: parse_id(after.as_deref())?,
        limit: check_limit(limit)?,
    };
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        let rows = store.list_callbacks(&query).await;
        store.close().await;
        let rows = rows?;
        for c in &rows {
            let status = match c.delivered_at {
                Some(t) => format!("delivered={}", t.to_rfc3339()),
                None => format!("pending next_attempt={}", c.next_attempt_at.to_rfc3339()),
            };
            println!(
                "{:<6} {} {:<16} point={} failure={} event={} attempts={} {} last_error={}",
                c.id,
                c.iccid,
                c.operator,
                c.point,
                c.failure.as_deref().unwrap_or("-"),
                c.event_at.to_rfc3339(),
                c.attempts,
                status,
                c.last_error
                    .as_deref()
                    .map_or("-".to_owned(), |e| format!("{e:?}")),
            );
        }
        if rows.len() == query.limit as usize
            && let Some(last) = rows.last()
        {
            println!("next page: --after {}", last.id);
        }
        Ok(())
    })
}

/// Runs `ferrosim notifications`.
pub fn run_notifications(args: NotificationsArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    let NotificationsCommand::List {
        operation,
        iccid,
        eid,
        since,
        until,
        limit,
        after,
    } = args.command;
    let query = NotificationQuery {
        operation: operation
            .as_deref()
            .map(|o| one_of("--operation", o, &OPERATIONS).map(str::to_owned))
            .transpose()?,
        iccid,
        eid,
        since,
        until,
        after: parse_id(after.as_deref())?,
        limit: check_limit(limit)?,
    };
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        let rows = store.list_notifications(&query).await;
        store.close().await;
        let rows = rows?;
        for n in &rows {
            println!(
                "{:<6} {} {:<8} seq={} iccid={} eid={} address={} bytes={}",
                n.id,
                n.received_at.to_rfc3339(),
                n.operation,
                n.seq_number,
                n.iccid.as_ref().map_or("-".into(), ToString::to_string),
                n.eid.as_ref().map_or("-".into(), ToString::to_string),
                n.address,
                n.raw_len,
            );
        }
        if rows.len() == query.limit as usize
            && let Some(last) = rows.last()
        {
            println!("next page: --after {}", last.id);
        }
        Ok(())
    })
}
