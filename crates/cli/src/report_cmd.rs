//! `ferrosim report sla …`: SLA reports (HTML with SVG charts, CSV, JSON)
//! from telemetry events.
//!
//! Events come from the instance's database (the activation telemetry
//! `ferrosim serve` records), or from a JSON-lines file (`--events`, the
//! format of `ferrosim_telemetry::record`, as `ferrosim demo --events-out`
//! writes it) loaded into the in-memory telemetry store.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_telemetry::report::render::{csv, html, json};
use ferrosim_telemetry::report::{SlaQuery, SlaTargets, sla_report};
use ferrosim_telemetry::time::parse_time;
use ferrosim_telemetry::{
    Dictionary, Dimension, Event, EventQuery, MemTelemetryStore, TelemetryStore, Timestamp,
    read_jsonl,
};

use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, open_store, redact, telemetry_store_options};
use ferrosim_store::SqlStore;

/// `ferrosim report …`
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Targets against actuals, breaches, error budget left and incidents
    /// with their MTTR, per carrier, vendor or SM-DP+.
    Sla(SlaArgs),
}

#[derive(Debug, Args)]
struct SlaArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Period start: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).
    #[arg(long)]
    from: String,
    /// Period end (excluded), same forms.
    #[arg(long)]
    to: String,
    /// One section per carrier, vendor, smdp (or model, firmware, group, rollout, wave).
    #[arg(long, default_value = "carrier")]
    by: String,
    /// Telemetry events, one JSON object per line (default: the events the
    /// instance's SM-DP+ recorded in its database).
    #[arg(long, value_name = "FILE.jsonl")]
    events: Option<PathBuf>,
    /// Directory to write sla.html, sla.csv and sla.json into (created).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Chart and breach bucket in hours (default: 24, or 1 for periods up to two days).
    #[arg(long)]
    bucket_hours: Option<u32>,
    /// Target ratio of activations successful within 60 s.
    #[arg(long, default_value_t = 0.99)]
    target_success: f64,
    /// Target MTTR of failed activations, in seconds.
    #[arg(long, default_value_t = 900)]
    target_mttr_secs: u64,
    /// Target registration success rate.
    #[arg(long, default_value_t = 0.98)]
    target_registration: f64,
    /// Maximum bytes per active profile, if the SLA sets one.
    #[arg(long)]
    max_bytes_per_profile: Option<f64>,
}

/// Runs `ferrosim report …`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    match args.command {
        ReportCommand::Sla(a) => sla(a),
    }
}

fn sla(a: SlaArgs) -> anyhow::Result<()> {
    let Some(from) = parse_time(&a.from) else {
        bail!(
            "--from {:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
            a.from
        )
    };
    let Some(to) = parse_time(&a.to) else {
        bail!(
            "--to {:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
            a.to
        )
    };
    let Some(by) = Dimension::parse(&a.by) else {
        bail!(
            "--by {:?}: expected carrier, vendor, smdp, model, firmware, group, rollout or wave",
            a.by
        )
    };
    let span_hours = (to.millis() - from.millis()) / 3_600_000;
    let bucket_hours = a
        .bucket_hours
        .map_or(if span_hours <= 48 { 1 } else { 24 }, i64::from);
    // Everything up to the end of the period: profile history from before it
    // decides which profiles were active.
    let wanted = EventQuery::between(Timestamp(i64::MIN), to);
    let (events, dict) = match &a.events {
        Some(path) => events_from_file(path, &wanted)?,
        None => events_from_instance(&a.instance, &wanted)?,
    };
    let query = SlaQuery {
        from,
        to,
        as_of: to,
        by,
        bucket_ms: bucket_hours.saturating_mul(3_600_000),
        targets: SlaTargets {
            success_within_60s: a.target_success,
            mttr_ms: a.target_mttr_secs.saturating_mul(1000),
            registration_success: a.target_registration,
            max_bytes_per_active_profile: a.max_bytes_per_profile,
        },
    };
    let report = sla_report(&events, &query, &dict)?;
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    for (name, text) in [
        ("sla.html", html(&report)?),
        ("sla.csv", csv(&report)?),
        ("sla.json", json(&report)?),
    ] {
        let path = a.out_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let t = &report.total;
    println!(
        "{} activations, {} within 60 s ({}), MTTR {}, {} breaches; wrote {}/sla.{{html,csv,json}}",
        t.metrics.activations.started,
        t.metrics.activations.within_target,
        t.metrics
            .activations
            .success_ratio
            .map_or("–".to_owned(), |r| format!("{:.2} %", r * 100.0)),
        t.metrics
            .recovery
            .mttr_ms
            .map_or("–".to_owned(), |ms| format!("{:.1} s", ms / 1000.0)),
        report
            .sections
            .iter()
            .map(|s| s.breaches.len())
            .sum::<usize>(),
        a.out_dir.display()
    );
    Ok(())
}

/// The events of a JSON-lines file that `wanted` selects.
fn events_from_file(
    path: &std::path::Path,
    wanted: &EventQuery,
) -> anyhow::Result<(Vec<Event>, Dictionary)> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let dict = Dictionary::new();
    let events = read_jsonl(std::io::BufReader::new(file), &dict)
        .with_context(|| format!("reading {}", path.display()))?;
    let store = MemTelemetryStore::with_dictionary(dict.clone());
    store.record_all(&events);
    Ok((store.select(wanted)?, dict))
}

/// The events `wanted` selects from the instance's telemetry database
/// (SQLite or PostgreSQL), as `ferrosim serve` recorded them: its own
/// (`[telemetry] database_url`, on SQLite `NAME-telemetry.db` by default) and
/// the instance's database, where events were kept before they had a
/// database of their own, in time order.
fn events_from_instance(
    instance: &InstanceArgs,
    wanted: &EventQuery,
) -> anyhow::Result<(Vec<Event>, Dictionary)> {
    let cfg = InstanceConfig::resolve(instance, None)?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = open_store(&cfg, Access::Recorded).await?;
        let dict = Dictionary::new();
        let events = store
            .telemetry(dict.clone())
            .query(wanted)
            .await
            .context("reading the activation telemetry from the database");
        store.close().await;
        let mut events = events?;
        let own_url = cfg.telemetry.own_database_url(&cfg.database_url());
        let own_exists = own_url
            .as_deref()
            .is_some_and(|u| crate::instance::sqlite_file(u).is_none_or(|f| f.exists()));
        if let (Some(url), true) = (own_url, own_exists) {
            let own = SqlStore::connect(&url, &telemetry_store_options(&cfg)?)
                .await
                .with_context(|| format!("opening the telemetry database {}", redact(&url)))?;
            let more = own
                .telemetry(dict.clone())
                .query(wanted)
                .await
                .context("reading the activation telemetry from its database");
            own.close().await;
            events.extend(more?);
            events.sort_by_key(|e| e.at);
            if let Some(limit) = wanted.limit {
                events.truncate(limit);
            }
        }
        Ok((events, dict))
    })
}
