//! Full-fidelity mode: a scenario's consumer phones against a running
//! SM-DP+ (`ferrosim serve`, or any SGP.22 SM-DP+) over real HTTPS.
//!
//! The virtual mode ([`crate::engine`]) runs everything in one process in
//! virtual time. Here the same population ([`crate::population`]: who
//! arrives where and when, which vendor, when they scan their QR code)
//! drives real devices in real time: before the event one ES2+ order per
//! phone is placed at the target with the operator's credentials
//! ([`OrderDesk`]); then each phone, at its scan time on the scenario's
//! clock compressed by the time scale, gets a virtual eUICC issued by the
//! EUM the target trusts ([`identity`]) and runs the LPA's download
//! machine against the target's ES9+ over HTTPS ([`link`]), enables the
//! profile, delivers its notifications, and registers on its carrier.
//!
//! What the protocol does is real; what the radio network does stays
//! modelled on the device side ([`crate::network`]): each ES9+ call waits
//! the data-path round trips of the phone's cell at that moment before it
//! goes out (and fails in a full outage), and the registration after the
//! enable is the model's answer with its latency, retries and backoff.
//! Only the arrival schedule (and the outages and stays, which are part of
//! the event's shape) run on the compressed clock; once a phone acts, its
//! timeline is real time, so "activation success within 60 s" means 60
//! real seconds against the target.
//!
//! Bounded: at most [`MAX_DEVICES`] phones, [`MAX_CONCURRENCY`] downloads
//! in flight and [`MAX_DURATION_S`] seconds; a target off loopback is
//! refused unless allowed ([`target`]).

pub mod identity;
pub mod iot;
mod link;
mod phone;
mod record;
pub mod rollout;
pub mod target;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrosim_fleet::config::FleetConfig;
use ferrosim_ids::MatchingId;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{ActivationCode, SmdpAddress};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use identity::EumIssuer;
pub use target::Target;

use crate::error::SimError;
use crate::network::{AreaIx, Attach, AttachBudget, CarrierIx, Load, Network};
use crate::population::Population;
use crate::report::{Collected, SecondsPercentiles};
use crate::scenario::Scenario;

/// Most phones in one full-fidelity run.
pub const MAX_DEVICES: u32 = 10_000;
/// Most downloads in flight at once.
pub const MAX_CONCURRENCY: usize = 1_024;
/// Longest run (s).
pub const MAX_DURATION_S: u64 = 3_600;
/// Largest time scale (scenario seconds per wall-clock second).
pub const MAX_TIME_SCALE: f64 = 1_000_000.0;

/// The operator's ES2+ side at the target: how the phones' orders are
/// placed (an HTTPS client with the operator's credentials in the CLI).
pub trait OrderDesk: Send + Sync + 'static {
    /// ES2+ downloadOrder of a profile of `profile_type` and confirmOrder
    /// with release (each retried while the target throttles the operator):
    /// the order, or why it failed.
    fn order(&self, profile_type: &str) -> impl Future<Output = Result<Ordered, String>> + Send;
}

/// An order placed and released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    /// Its matching id (the phone's activation code carries it).
    pub matching_id: MatchingId,
    /// Calls the target refused for the operator's rate limit (HTTP 429)
    /// and that were sent again after a pause.
    pub throttled: u32,
}

/// How to run a scenario in full fidelity.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The SM-DP+.
    pub target: Target,
    /// Phones (at most [`MAX_DEVICES`]).
    pub devices: u32,
    /// Seed of the population (the scenario's when `None`).
    pub seed: Option<u64>,
    /// Scenario seconds per wall-clock second for the arrival schedule;
    /// `None`: the scenario's duration fits in half of `max_duration`.
    pub time_scale: Option<f64>,
    /// The whole run (orders and event) ends by then; phones not done are
    /// cut off and reported.
    pub max_duration: Duration,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// The profile type ordered (the scenario's, from the phones' fleet
    /// group, when `None`).
    pub profile_type: Option<String>,
    /// PEM certificates the target's TLS certificate chains to.
    pub tls_roots_pem: Vec<u8>,
}

impl LiveOptions {
    /// Checks the bounds; the time scale the run will use for `scenario`.
    pub fn check(&self, scenario: &Scenario) -> Result<f64, SimError> {
        let bad = |s: String| Err(SimError::Parameter(s));
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return bad(format!(
                "--devices must be 1..={MAX_DEVICES} in full-fidelity mode, not {}",
                self.devices
            ));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return bad(format!(
                "--concurrency must be 1..={MAX_CONCURRENCY}, not {}",
                self.concurrency
            ));
        }
        let max = self.max_duration.as_secs_f64();
        if !(1.0..=MAX_DURATION_S as f64).contains(&max) {
            return bad(format!(
                "--max-duration must be 1..={MAX_DURATION_S} seconds, not {max}"
            ));
        }
        let duration_s = scenario.scenario.duration.millis() as f64 / 1000.0;
        let scale = match self.time_scale {
            Some(x) => x,
            None => (duration_s / (max / 2.0)).max(1.0),
        };
        if !scale.is_finite() || scale <= 0.0 || scale > MAX_TIME_SCALE {
            return bad(format!(
                "--time-scale must be above 0 and at most {MAX_TIME_SCALE}, not {scale}"
            ));
        }
        Ok(scale)
    }
}

/// Where a full-fidelity run is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveProgress {
    /// Scenario time reached (ms).
    pub sim_ms: i64,
    /// The scenario's duration (ms).
    pub duration_ms: i64,
    /// Phones that started their download.
    pub started: u64,
    /// Downloads installed and enabled.
    pub done: u64,
    /// Downloads failed.
    pub failed: u64,
    /// Phones registered on their carrier.
    pub registered: u64,
}

/// What a full-fidelity run adds to the summary (`full_fidelity` in the
/// JSON report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullFidelity {
    /// The SM-DP+ (ES2+ and ES9+ base URL).
    pub target: String,
    /// Whether it is on loopback.
    pub loopback: bool,
    /// Scenario seconds per wall-clock second of the arrival schedule.
    pub time_scale: f64,
    /// The run's bound (s).
    pub max_duration_s: f64,
    /// Downloads in flight at once, at most.
    pub concurrency: usize,
    /// The profile type ordered.
    pub profile_type: String,
    /// ES2+ orders placed and released.
    pub orders: u64,
    /// ES2+ orders that failed, by cause.
    pub orders_failed: BTreeMap<String, u64>,
    /// ES2+ calls the target refused for the operator's rate limit (HTTP
    /// 429) and that were sent again after a pause.
    pub orders_throttled: u64,
    /// Wall time of placing the orders (s).
    pub orders_s: f64,
    /// Phones whose scan fell inside the scenario's duration.
    pub scheduled: u64,
    /// The scenario's IoT devices among `--devices`: not run in a scenario
    /// that mixes them with phones (a scenario of IoT devices only runs
    /// them against the target's eIM and fleet, [`iot`]).
    pub iot_not_run: u64,
    /// Phones that started their download.
    pub started: u64,
    /// Phones whose scan time came after the run's bound.
    pub not_started: u64,
    /// Phones still busy when the run's bound came (cut off).
    pub cut_off: u64,
    /// Phones registered on their carrier with the new profile.
    pub registered: u64,
    /// Downloads tried again by their user after a transient failure
    /// (unreachable, time-out, 429, 5xx), with the population's backoff.
    pub download_retries: u64,
    /// Notifications the phones could not deliver to the SM-DP+.
    pub notifications_undelivered: u64,
    /// How long phones waited for a download slot (`concurrency`) after
    /// their scan time: the load generator's own limit, not the target's.
    pub start_delay_s: SecondsPercentiles,
    /// ES9+ calls per function, real duration (network delay included).
    pub es9_calls: BTreeMap<String, CallStats>,
    /// Network delay the model put before ES9+ calls, in all (s).
    pub injected_delay_s: f64,
    /// Downloads installed and enabled per wall-clock second of the event.
    pub downloads_per_s: f64,
}

/// The calls of one ES9+ function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallStats {
    /// Calls made.
    pub calls: u64,
    /// Of which not `ok`.
    pub failed: u64,
    /// Their durations.
    pub duration_s: SecondsPercentiles,
}

/// Devices attached per cell area in the run so far, the cores' attach
/// budgets, and who leaves when.
struct LiveNet {
    load: Load,
    budget: AttachBudget,
    window: Instant,
    leaves: Vec<(Instant, CarrierIx, AreaIx)>,
}

/// What the phones share.
pub(crate) struct Ctx {
    network: Network,
    population: Population,
    client: HttpsEs9Client,
    net: Mutex<LiveNet>,
    event_start: Instant,
    time_scale: f64,
    started: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    registered: AtomicU64,
}

impl Ctx {
    /// A run's shared context with its event starting at `event_start`, no
    /// device counted yet and the network's load empty.
    pub(crate) fn new(
        network: &Network,
        population: &Population,
        client: HttpsEs9Client,
        event_start: Instant,
        time_scale: f64,
    ) -> Self {
        Self {
            network: network.clone(),
            population: population.clone(),
            client,
            net: Mutex::new(LiveNet {
                load: Load::new(network.carriers(), network.areas()),
                budget: network.budget(1000, 1),
                window: event_start,
                leaves: Vec::new(),
            }),
            event_start,
            time_scale,
            started: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            registered: AtomicU64::new(0),
        }
    }

    /// The scenario's clock now (ms from its start).
    fn sim_ms(&self) -> i64 {
        (self.event_start.elapsed().as_secs_f64() * 1000.0 * self.time_scale) as i64
    }

    /// The wall-clock instant of scenario time `sim_ms`.
    fn wall(&self, sim_ms: i64) -> Instant {
        let secs = (sim_ms.max(0) as f64 / 1000.0 / self.time_scale).min(1e9);
        self.event_start + Duration::from_secs_f64(secs)
    }

    fn net<R>(&self, f: impl FnOnce(&mut LiveNet) -> R) -> Option<R> {
        let mut net = self.net.lock().ok()?;
        let now = Instant::now();
        let net = &mut *net;
        let load = &mut net.load;
        net.leaves.retain(|(at, c, a)| {
            let gone = *at <= now;
            if gone {
                load.add(*c, *a, -1);
            }
            !gone
        });
        if now.duration_since(net.window) >= Duration::from_secs(1) {
            net.budget.refill();
            net.window = now;
        }
        Some(f(net))
    }

    /// A data-path check through `carrier` in `area` now.
    pub(crate) fn data_path(
        &self,
        carrier: CarrierIx,
        area: AreaIx,
        rng: &mut StdRng,
    ) -> (u32, u16) {
        let t = self.sim_ms();
        self.net(|n| self.network.data_path(carrier, area, t, &n.load, rng))
            .unwrap_or((0, 1000))
    }

    /// A registration attempt now, and whether the core's attach limit
    /// refused it.
    fn register(
        &self,
        carrier: CarrierIx,
        area: AreaIx,
        modem_failure: f64,
        rng: &mut StdRng,
    ) -> (Attach, bool) {
        let t = self.sim_ms();
        self.net(|n| {
            let before = n.budget.refused[usize::from(carrier)];
            let answer =
                self.network
                    .register(carrier, area, t, &n.load, &mut n.budget, modem_failure, rng);
            (answer, n.budget.refused[usize::from(carrier)] > before)
        })
        .unwrap_or((Attach::NoResponse, false))
    }

    /// A phone attached to `carrier` in `area`, leaving at scenario time
    /// `leave_ms` when it does.
    fn attach(&self, carrier: CarrierIx, area: AreaIx, leave_ms: Option<i64>) {
        let leave = leave_ms.map(|ms| self.wall(ms));
        self.net(|n| {
            n.load.add(carrier, area, 1);
            if let Some(at) = leave {
                n.leaves.push((at, carrier, area));
            }
        });
    }
}

/// Runs `scenario`'s consumer phones against `options.target`: orders
/// through `desk`, phones issued by `issuer`. `progress` is called about
/// four times a second. Returns what the run collected (the report's
/// input, as the virtual mode's) and the full-fidelity figures.
pub async fn run<D: OrderDesk>(
    scenario: &Scenario,
    options: &LiveOptions,
    issuer: Arc<EumIssuer>,
    desk: Arc<D>,
    progress: &mut dyn FnMut(&LiveProgress),
) -> Result<(Collected, FullFidelity), SimError> {
    let run_start = Instant::now();
    let deadline = tokio::time::Instant::from_std(run_start + options.max_duration);
    let time_scale = options.check(scenario)?;
    let devices = options.devices;
    if u64::from(devices) > issuer.capacity() {
        return Err(SimError::Parameter(format!(
            "the EUM's EID range has room for {} phones, not {devices}",
            issuer.capacity()
        )));
    }
    let seed = options.seed.unwrap_or(scenario.scenario.seed);
    let fleet_config = FleetConfig::from_toml(&scenario.fleet_toml())
        .map_err(|e| SimError::Fleet(e.to_string()))?;
    let network = Network::new(scenario);
    let population = Population::new(scenario, &fleet_config, &network, devices, seed)?;
    if !population.has_consumers() {
        return Err(SimError::Parameter(format!(
            "full-fidelity mode runs a scenario's consumer phones here; {} has none among these \
             devices (a scenario of IoT devices only runs them against the target's eIM and fleet)",
            scenario.scenario.name
        )));
    }
    let duration_ms = scenario.scenario.duration.millis_i64();
    // The phones and their schedule on the scenario's clock.
    let mut plans = Vec::new();
    let mut iot_not_run = 0;
    let mut profile_type = options.profile_type.clone();
    for n in 0..devices {
        let d = population.device(n);
        if !d.consumer {
            iot_not_run += 1;
            continue;
        }
        if profile_type.is_none() {
            let group = population.group(d.mix);
            profile_type = fleet_config
                .groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| g.primary.profile_type.clone());
        }
        let mut rng = StdRng::seed_from_u64(seed.rotate_left(17) ^ (u64::from(n) << 1 | 1));
        let scan_ms = d.arrival_ms + population.scan_delay_ms(&mut rng);
        if scan_ms >= duration_ms {
            continue;
        }
        plans.push(phone::Plan {
            n,
            eid: issuer.eid(n)?,
            area: d.area,
            vendor: d.vendor,
            mix: d.mix,
            carrier: d.profiles[0].1,
            arrival_ms: d.arrival_ms,
            scan_ms,
            rng_seed: rand::RngExt::random(&mut rng),
        });
    }
    let profile_type = profile_type
        .ok_or_else(|| SimError::Scenario("the phones' fleet group has no profile type".into()))?;
    let roots = TlsTrust::roots_from_bytes(&options.tls_roots_pem)
        .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?;
    let client = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots)))
        .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?;
    let address = SmdpAddress::new(&options.target.address)
        .map_err(|e| SimError::Parameter(format!("--target: {e}")))?;

    // Before the event: one order per phone.
    let orders_started = Instant::now();
    let (codes, orders_throttled) = order_all(
        &plans,
        &desk,
        &profile_type,
        &address,
        options.concurrency,
        deadline,
    )
    .await;
    let orders_s = orders_started.elapsed().as_secs_f64();
    let mut orders_failed: BTreeMap<String, u64> = BTreeMap::new();
    for code in &codes {
        if let Err(why) = code {
            *orders_failed.entry(why.clone()).or_default() += 1;
        }
    }

    // The event.
    let event_start = Instant::now();
    let ctx = Arc::new(Ctx::new(
        &network,
        &population,
        client,
        event_start,
        time_scale,
    ));
    let dims = record::Dimensions::new(scenario, &population, &network, &options.target.address)?;
    let slots = Arc::new(Semaphore::new(options.concurrency));
    let mut tasks = JoinSet::new();
    let scheduled = plans.len() as u64;
    for (plan, code) in plans.into_iter().zip(codes) {
        let ctx = Arc::clone(&ctx);
        let issuer = Arc::clone(&issuer);
        let slots = Arc::clone(&slots);
        let dims = dims.of(&plan);
        tasks.spawn(
            async move { phone::run(plan, code, dims, &ctx, &issuer, &slots, deadline).await },
        );
    }
    let mut records = Vec::with_capacity(tasks.len());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(r)) => records.push(r),
                Some(Err(e)) => return Err(SimError::Device(format!("a phone's task ended abnormally: {e}"))),
                None => break,
            },
            _ = tick.tick() => progress(&LiveProgress {
                sim_ms: ctx.sim_ms().min(duration_ms),
                duration_ms,
                started: ctx.started.load(Ordering::Relaxed),
                done: ctx.done.load(Ordering::Relaxed),
                failed: ctx.failed.load(Ordering::Relaxed),
                registered: ctx.registered.load(Ordering::Relaxed),
            }),
        }
    }
    let loop_s = event_start.elapsed().as_secs_f64();
    let reached_ms = ctx.sim_ms().min(duration_ms);
    records.sort_by_key(|r| r.plan.n);
    let mut collected = record::collect(
        scenario,
        devices,
        seed,
        &network,
        &dims,
        &records,
        reached_ms,
        population.stay_ms,
    );
    collected.setup_s = orders_s;
    collected.loop_s = loop_s;
    let figures = record::figures(
        &records,
        record::Settings {
            target: &options.target,
            time_scale,
            max_duration_s: options.max_duration.as_secs_f64(),
            concurrency: options.concurrency,
            profile_type,
            orders_failed,
            orders_throttled,
            orders_s,
            scheduled,
            iot_not_run,
            loop_s,
        },
    );
    Ok((collected, figures))
}

/// Places one order per phone, at most `concurrency` (and 64) at a time,
/// until `deadline`: each phone's activation code or why it has none, and
/// the calls the target throttled.
async fn order_all<D: OrderDesk>(
    plans: &[phone::Plan],
    desk: &Arc<D>,
    profile_type: &str,
    address: &SmdpAddress,
    concurrency: usize,
    deadline: tokio::time::Instant,
) -> (Vec<Result<ActivationCode, String>>, u64) {
    let slots = Arc::new(Semaphore::new(concurrency.min(64)));
    let mut tasks = JoinSet::new();
    for (i, _) in plans.iter().enumerate() {
        let desk = Arc::clone(desk);
        let slots = Arc::clone(&slots);
        let profile_type = profile_type.to_owned();
        let address = address.clone();
        tasks.spawn(async move {
            let ordered = tokio::time::timeout_at(deadline, async {
                let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
                desk.order(&profile_type).await
            })
            .await
            .unwrap_or_else(|_| Err("not placed within --max-duration".into()));
            let throttled = ordered.as_ref().map_or(0, |o| o.throttled);
            let code = ordered.and_then(|o| {
                ActivationCode::new(address, Some(o.matching_id.as_str()))
                    .map_err(|e| e.to_string())
            });
            (i, code.map_err(|e| format!("ES2+ order: {e}")), throttled)
        });
    }
    let mut codes: Vec<Result<ActivationCode, String>> = plans
        .iter()
        .map(|_| Err("ES2+ order: not placed".into()))
        .collect();
    let mut throttled = 0;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, code, t)) = joined {
            codes[i] = code;
            throttled += u64::from(t);
        }
    }
    (codes, throttled)
}

/// The full-fidelity section of the HTML report.
pub fn html(ff: &FullFidelity) -> String {
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3} s"));
    maud::html! {
        h2 { "Full fidelity: the target over HTTPS" }
        table {
            tr { th { "target" } td { (ff.target) } }
            tr { th { "profile type ordered" } td { (ff.profile_type) } }
            tr { th { "ES2+ orders placed / failed" } td { (ff.orders) " / " (ff.orders_failed.values().sum::<u64>())
                 " in " (format!("{:.1}", ff.orders_s)) " s (" (ff.orders_throttled) " calls throttled by the target and sent again)" } }
            tr { th { "phones scheduled / started / not started (past the bound) / cut off" }
                 td { (ff.scheduled) " / " (ff.started) " / " (ff.not_started) " / " (ff.cut_off) } }
            tr { th { "registered on their carrier" } td { (ff.registered) } }
            tr { th { "downloads tried again after a transient failure" } td { (ff.download_retries) } }
            @if ff.iot_not_run > 0 {
                tr { th { "IoT devices of the scenario not run (a mixed scenario runs its phones only)" } td { (ff.iot_not_run) } }
            }
            tr { th { "notifications left undelivered" } td { (ff.notifications_undelivered) } }
            tr { th { "downloads per second" } td { (format!("{:.2}", ff.downloads_per_s)) } }
            tr { th { "bound, concurrency" } td { (format!("{:.0}", ff.max_duration_s)) " s, " (ff.concurrency) " downloads at once" } }
            tr { th { "wait for a download slot (p50 / p99 / max)" }
                 td { (secs(ff.start_delay_s.p50)) " / " (secs(ff.start_delay_s.p99)) " / " (secs(ff.start_delay_s.max)) } }
            tr { th { "network delay injected before ES9+ calls" } td { (format!("{:.1}", ff.injected_delay_s)) " s in all" } }
        }
        @for (cause, n) in &ff.orders_failed {
            p { "Order failed: " (n) " × " (cause) }
        }
        table {
            tr { th { "ES9+ function" } th { "calls" } th { "failed" } th { "p50" } th { "p90" } th { "p99" } th { "max" } }
            @for (name, c) in &ff.es9_calls {
                tr { td { (name) } td { (c.calls) } td { (c.failed) } td { (secs(c.duration_s.p50)) }
                     td { (secs(c.duration_s.p90)) } td { (secs(c.duration_s.p99)) } td { (secs(c.duration_s.max)) } }
            }
        }
    }
    .into_string()
}
