//! `ferrosim simulate <scenario> --target https://host:port`: the
//! scenario's consumer phones against a running SM-DP+ over real HTTPS
//! (`ferrosim_sim::live`), with the operator's ES2+ credentials for their
//! orders and the EUM the SM-DP+ trusts for their eUICCs; the report is
//! the virtual mode's, marked full-fidelity.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest};
use ferrosim_ids::MatchingId;
use ferrosim_server::es2_client::{Es2Client, Es2ClientError};
use ferrosim_sim::live::{EumIssuer, LiveOptions, LiveProgress, OrderDesk, Ordered, Target};
use ferrosim_sim::{Scenario, Summary};
use indicatif::ProgressBar;

use crate::admin_cmd::block_on;
use crate::simulate_cmd::scenario_bar;

/// Phones of a full-fidelity run when `--devices` is not given.
pub const DEFAULT_DEVICES: u32 = 100;

/// The full-fidelity arguments, checked by the caller's parser.
pub struct LiveArgs {
    pub target: String,
    pub allow_remote: bool,
    pub pki: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub operator: Option<String>,
    pub token: Option<String>,
    pub api_token: Option<String>,
    pub add_initial_eim: Option<PathBuf>,
    pub profile_type: Option<String>,
    pub devices: Option<u32>,
    pub seed: Option<u64>,
    pub time_scale: Option<f64>,
    pub max_duration: u64,
    pub concurrency: u64,
    pub out: PathBuf,
    pub json: bool,
}

/// Longest pause before an ES2+ call the target throttled is sent again.
const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(5);

/// The operator's back office: orders over the target's ES2+, each call
/// sent again after a growing pause while the target answers 429 (its rate
/// limit for the operator: the request did not reach the SM-DP+, so
/// sending it again reserves nothing twice).
struct Es2Desk(Es2Client);

impl OrderDesk for Es2Desk {
    fn order(&self, profile_type: &str) -> impl Future<Output = Result<Ordered, String>> + Send {
        let client = self.0.clone();
        let profile_type = profile_type.to_owned();
        async move {
            let mut throttled = 0;
            let client = &client;
            let ordered = throttle_aware(&mut throttled, || {
                let request = DownloadOrderRequest {
                    header: client.header(),
                    eid: None,
                    iccid: None,
                    profile_type: Some(profile_type.clone()),
                };
                async move { client.download_order(&request).await }
            })
            .await?;
            let confirmed = throttle_aware(&mut throttled, || {
                let request = ConfirmOrderRequest {
                    header: client.header(),
                    iccid: ordered.iccid.clone(),
                    eid: None,
                    matching_id: None,
                    confirmation_code: None,
                    smds_address: None,
                    release_flag: true,
                };
                async move { client.confirm_order(&request).await }
            })
            .await?;
            let matching_id = MatchingId::new(&confirmed.matching_id)
                .map_err(|e| format!("confirmOrder answered a matching id no LPA can use: {e}"))?;
            Ok(Ordered {
                matching_id,
                throttled,
            })
        }
    }
}

/// `call`, sent again after a pause (100 ms doubling to
/// [`MAX_THROTTLE_PAUSE`], with jitter) for as long as the target answers
/// 429; the caller bounds the whole in time.
async fn throttle_aware<T, F, Fut>(throttled: &mut u32, mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Es2ClientError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match call().await {
            Err(Es2ClientError::Http { source, .. })
                if source.status() == Some(reqwest::StatusCode::TOO_MANY_REQUESTS) =>
            {
                *throttled += 1;
                let jitter =
                    Duration::from_millis(rand::random_range(0..=pause.as_millis() as u64 / 2));
                tokio::time::sleep(pause + jitter).await;
                pause = (pause * 2).min(MAX_THROTTLE_PAUSE);
            }
            other => return other.map_err(|e| e.to_string()),
        }
    }
}

/// Runs it.
pub fn run(scenario: &Scenario, args: LiveArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.target, args.allow_remote)?;
    let mut options = LiveOptions {
        target: target.clone(),
        devices: args.devices.unwrap_or(DEFAULT_DEVICES),
        seed: args.seed,
        time_scale: args.time_scale,
        max_duration: Duration::from_secs(args.max_duration),
        concurrency: usize::try_from(args.concurrency)?,
        profile_type: args.profile_type.clone(),
        tls_roots_pem: Vec::new(),
    };
    let time_scale = options.check(scenario)?;
    if !target.loopback && !args.json {
        eprintln!(
            "warning: {} is not on loopback (--allow-remote): this run sends real ES2+ orders and downloads to it",
            target.base_url
        );
    }
    let Some(pki) = &args.pki else {
        bail!(
            "--target needs --pki DIR: the test PKI whose EUM the target trusts (CI/ci.pem, EUM/eum.pem, EUM/eum.key.pem)"
        );
    };
    let iot_only = !scenario
        .population
        .mixes
        .iter()
        .any(|m| matches!(m.kind, ferrosim_sim::scenario::DeviceKind::Consumer));
    if iot_only {
        return run_iot(scenario, &args, options, pki, time_scale);
    }
    let Some(operator) = args.operator.as_deref().filter(|o| !o.trim().is_empty()) else {
        bail!("--target needs --operator ID: the operator whose ES2+ orders the phones download");
    };
    let Some(token) = args.token.as_deref().filter(|t| !t.trim().is_empty()) else {
        bail!("--target needs --token (or FERROSIM_ES2_TOKEN): the operator's ES2+ token");
    };
    let issuer = Arc::new(EumIssuer::from_pki_dir(pki)?);
    let ca = args.ca.clone().unwrap_or_else(|| pki.join("CI/ci.pem"));
    let tls_roots_pem =
        std::fs::read(&ca).with_context(|| format!("--ca: cannot read {}", ca.display()))?;
    options.tls_roots_pem = tls_roots_pem.clone();
    let es2 =
        Es2Client::new(&target.base_url, operator, token, &tls_roots_pem).context("ES2+ client")?;
    let desk = Arc::new(Es2Desk(es2));
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        println!(
            "ferrosim simulate {} in full fidelity against {}: {} phones, arrivals at {time_scale:.1}x, at most {} s",
            scenario.scenario.name, target.base_url, options.devices, args.max_duration
        );
        scenario_bar(scenario, "scenario")?
    };
    let mut progress = |p: &LiveProgress| {
        bar.set_position(u64::try_from(p.sim_ms / 1000).unwrap_or(0));
        bar.set_message(format!(
            "{} started, {} enabled, {} failed, {} registered",
            p.started, p.done, p.failed, p.registered
        ));
    };
    let mut outcome = None;
    block_on(async {
        outcome = Some(
            ferrosim_sim::simulate_live(scenario, &options, issuer, desk, &mut progress).await?,
        );
        Ok(())
    })?;
    bar.finish_and_clear();
    let Some((collected, metrics, summary)) = outcome else {
        bail!("the run ended without a result");
    };
    ferrosim_sim::report::write(&args.out, &summary, &metrics, &collected)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print(&summary, &args.out);
    }
    if let Some(ff) = &summary.full_fidelity
        && ff.orders == 0
    {
        bail!(
            "no ES2+ order could be placed at {}: {}",
            ff.target,
            ff.orders_failed
                .iter()
                .map(|(cause, n)| format!("{n} × {cause}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// The IoT devices of `scenario` against the target's eIM, fleet and
/// SM-DP+ (`ferrosim_sim::live::iot`).
fn run_iot(
    scenario: &Scenario,
    args: &LiveArgs,
    mut options: LiveOptions,
    pki: &std::path::Path,
    time_scale: f64,
) -> anyhow::Result<()> {
    let Some(api_token) = args.api_token.as_deref().filter(|t| !t.trim().is_empty()) else {
        bail!(
            "--target with an IoT scenario needs --api-token (or FERROSIM_API_TOKEN): an operator API token of the target"
        );
    };
    let Some(add_initial_eim) = &args.add_initial_eim else {
        bail!(
            "--target with an IoT scenario needs --add-initial-eim FILE: the target's AddInitialEim request (ferrosim eim bootstrap --out FILE)"
        );
    };
    let add_initial_eim = std::fs::read(add_initial_eim).with_context(|| {
        format!(
            "--add-initial-eim: cannot read {}",
            add_initial_eim.display()
        )
    })?;
    let issuer = Arc::new(EumIssuer::from_pki_dir(pki)?);
    let ca = args.ca.clone().unwrap_or_else(|| pki.join("CI/ci.pem"));
    options.tls_roots_pem =
        std::fs::read(&ca).with_context(|| format!("--ca: cannot read {}", ca.display()))?;
    let access = ferrosim_sim::live::iot::IotAccess {
        api_token: api_token.to_owned(),
        add_initial_eim,
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        println!(
            "ferrosim simulate {} in full fidelity against {}: {} IoT devices, the event at {time_scale:.1}x, at most {} s",
            scenario.scenario.name, options.target.base_url, options.devices, args.max_duration
        );
        scenario_bar(scenario, "scenario")?
    };
    let mut progress = |p: &LiveProgress| {
        bar.set_position(u64::try_from(p.sim_ms / 1000).unwrap_or(0));
        bar.set_message(if p.sim_ms == 0 {
            format!(
                "{} in the fleet, {} with primary and fallback",
                p.started, p.done
            )
        } else {
            format!(
                "{} registrations, {} on their fallback",
                p.done, p.registered
            )
        });
    };
    let mut outcome = None;
    block_on(async {
        outcome = Some(
            ferrosim_sim::simulate_live_iot(scenario, &options, access, issuer, &mut progress)
                .await?,
        );
        Ok(())
    })?;
    bar.finish_and_clear();
    let Some((collected, metrics, summary)) = outcome else {
        bail!("the run ended without a result");
    };
    ferrosim_sim::report::write(&args.out, &summary, &metrics, &collected)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if let Some(ff) = &summary.full_fidelity_iot {
        let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
        println!(
            "{}: full-fidelity against {}: {} IoT devices ({} associated, {} in the fleet, {} with primary and fallback after {:.1} s), {:.0} scenario minutes in {:.1} s of event",
            summary.scenario,
            ff.target,
            ff.devices,
            ff.associated,
            ff.registered_in_fleet,
            ff.converged,
            ff.converge_s,
            summary.simulated_s / 60.0,
            ff.event_s
        );
        println!(
            "failovers decided {}, completed {} (p50 {}, p99 {}, max {}); returns decided {}, completed {}; {} on their fallback at the end",
            ff.failovers_decided,
            summary.failover_completion_s.count,
            secs(summary.failover_completion_s.p50),
            secs(summary.failover_completion_s.p99),
            secs(summary.failover_completion_s.max),
            ff.returns_decided,
            summary.return_completion_s.count,
            ff.on_fallback_at_end
        );
        for r in &ff.rollouts {
            match (r.id, &r.error) {
                (Some(id), _) => println!(
                    "rollout {:?} (the target's {id}, soak {:.1} s, max wait {:.1} s): {}, {} wave(s) started, {} devices changed, {} rolled back; gates: {}",
                    r.name,
                    r.soak_s,
                    r.max_wait_s,
                    r.state,
                    r.waves_started,
                    r.devices_changed,
                    r.rolled_back,
                    if r.gate_verdicts.is_empty() {
                        "none judged".to_owned()
                    } else {
                        r.gate_verdicts.join(", ")
                    }
                ),
                (None, error) => println!(
                    "rollout {:?}: refused by the target: {}",
                    r.name,
                    error.as_deref().unwrap_or("?")
                ),
            }
        }
        for cmp in &summary.comparisons {
            if let (Some(a), Some(b)) = (&cmp.a.rollout, &cmp.b.rollout) {
                println!(
                    "{}: {} vs {}: devices that got the unserved APN {} vs {}, device-minutes on it (scenario clock) {:.1} vs {:.1}, still on it at the end {} vs {}; data-path checks failed {} vs {}",
                    cmp.name,
                    cmp.a.name,
                    cmp.b.name,
                    a.devices_with_bad_apn,
                    b.devices_with_bad_apn,
                    a.bad_apn_device_minutes,
                    b.bad_apn_device_minutes,
                    a.devices_on_bad_apn_at_end,
                    b.devices_on_bad_apn_at_end,
                    cmp.a.data_path_failures,
                    cmp.b.data_path_failures
                );
            }
        }
        for (cause, n) in &ff.setup_failures {
            println!("  setup failed {n:>4}: {cause}");
        }
        println!("report: {}", args.out.join("report.html").display());
    }
    Ok(())
}

fn print(summary: &Summary, out: &std::path::Path) {
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.2} %", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
    let Some(ff) = &summary.full_fidelity else {
        return;
    };
    println!(
        "{}: full-fidelity against {}: {} phones, {:.0} scenario minutes in {:.1} s wall (orders {:.1} s)",
        summary.scenario,
        ff.target,
        summary.devices,
        summary.simulated_s / 60.0,
        summary.wall_s,
        ff.orders_s
    );
    println!(
        "orders {} placed, {} failed, {} calls throttled by the target and sent again; phones {} scheduled, {} started, {} not started (past --max-duration), {} cut off",
        ff.orders,
        ff.orders_failed.values().sum::<u64>(),
        ff.orders_throttled,
        ff.scheduled,
        ff.started,
        ff.not_started,
        ff.cut_off
    );
    println!(
        "downloads {} (scan to profile enabled: p50 {}, p99 {}, max {}), failed {}, {} tried again, {:.2} per second; registered {}",
        summary.downloads,
        secs(summary.download_completion_s.p50),
        secs(summary.download_completion_s.p99),
        secs(summary.download_completion_s.max),
        summary.download_failures.values().sum::<u64>(),
        ff.download_retries,
        ff.downloads_per_s,
        ff.registered
    );
    for (cause, n) in &summary.download_failures {
        println!("  failed {n:>6}: {cause}");
    }
    if ff.iot_not_run > 0 {
        println!(
            "{} IoT devices of the scenario not run (a mixed scenario runs its phones only)",
            ff.iot_not_run
        );
    }
    println!(
        "activation success within 60 s {}, MTTR {}, bytes per active profile {}",
        pct(summary.activation_success_within_60s),
        secs(summary.mttr_s),
        summary
            .bytes_per_active_profile
            .map_or("-".to_owned(), |b| format!("{b:.0}"))
    );
    println!(
        "waited for a download slot: p50 {}, p99 {}; network delay injected {:.1} s in all",
        secs(ff.start_delay_s.p50),
        secs(ff.start_delay_s.p99),
        ff.injected_delay_s
    );
    for (name, c) in &ff.es9_calls {
        println!(
            "  {name:<36} {:>6} calls, {:>4} failed, p50 {}, p99 {}",
            c.calls,
            c.failed,
            secs(c.duration_s.p50),
            secs(c.duration_s.p99)
        );
    }
    println!("report: {}", out.join("report.html").display());
}
