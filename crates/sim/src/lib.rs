//! The city-scale event simulator of ferrosim.
//!
//! A scenario ([`scenario`], TOML) describes a city's areas, its carriers'
//! networks ([`network`]: cells and capacity per area, load-dependent
//! registration success and latency, outages by area, attach-rate limits),
//! the devices ([`population`]: where, which vendor, what profiles, when
//! they arrive, how they retry) and the fleet rules (the `ferrosim-fleet`
//! catalog). [`run`] plays it in virtual time, deterministically for a
//! seed, with the devices split into shards that advance in lockstep
//! windows on several threads ([`engine`], [`shard`]); it drives the real
//! fleet engine (failover, return, reconciler), the real eIM core (signed
//! packages, verified results) and real virtual eUICCs ([`iot`]), all in
//! memory. Telemetry events of the run feed `ferrosim-telemetry`, which
//! computes the headline metrics; [`report`] writes them with time series
//! as JSON, CSV and a self-contained HTML page with SVG charts, and
//! [`cost`] sets the run's wall time against the lower bound its signature
//! work sets.
//!
//! [`live`] is the full-fidelity mode: the same scenario's consumer phones
//! against a running SM-DP+ over real HTTPS, in real time, with the
//! network still modelled on the device side.

#![forbid(unsafe_code)]

mod charts;
pub mod compare;
pub mod consumer;
pub mod cost;
pub mod engine;
pub mod error;
pub mod iot;
pub mod live;
pub mod network;
pub mod population;
pub mod report;
pub mod scenario;
pub mod shard;

pub use engine::{Progress, RunOptions, run};
pub use error::SimError;
pub use report::{Collected, Summary};
pub use scenario::Scenario;

/// Measures the EC costs on the threads the run will use
/// ([`cost::measure_before_run`], in the fresh process, before any of the
/// run's state exists), then runs `scenario` (whose shards' threads time
/// more rounds during the loop) and builds its summary with the costs of
/// both timings ([`cost::MeasuredCosts::of`]): what `ferrosim simulate`
/// does before writing the report. The run's wall time starts after the
/// first measurement.
pub fn simulate(
    scenario: &Scenario,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Collected, ferrosim_telemetry::MetricsReport, Summary), SimError> {
    let before = cost::measure_before_run(options.shard_threads());
    let started = std::time::Instant::now();
    let mut collected = run(scenario, options, progress)?;
    let metrics_started = std::time::Instant::now();
    let metrics = collected.metrics();
    collected.metrics_s += metrics_started.elapsed().as_secs_f64();
    let wall_s = started.elapsed().as_secs_f64();
    let costs = cost::MeasuredCosts::of(&before, &collected.ec_samples);
    let summary = Summary::new(&collected, &metrics, costs, wall_s);
    Ok((collected, metrics, summary))
}

/// Runs `scenario` in full fidelity against `options.target` ([`live`])
/// and builds its summary, marked as such: what `ferrosim simulate
/// --target` does before writing the report. The signature work happens
/// at the target and is not counted here.
pub async fn simulate_live<D: live::OrderDesk>(
    scenario: &Scenario,
    options: &live::LiveOptions,
    issuer: std::sync::Arc<live::EumIssuer>,
    desk: std::sync::Arc<D>,
    progress: &mut dyn FnMut(&live::LiveProgress),
) -> Result<(Collected, ferrosim_telemetry::MetricsReport, Summary), SimError> {
    let started = std::time::Instant::now();
    let (collected, figures) = live::run(scenario, options, issuer, desk, progress).await?;
    let metrics = collected.metrics();
    let wall_s = started.elapsed().as_secs_f64();
    let mut summary = Summary::new(&collected, &metrics, cost::MeasuredCosts::default(), wall_s);
    summary.full_fidelity = Some(figures);
    Ok((collected, metrics, summary))
}

/// Runs `scenario`'s IoT devices in full fidelity against
/// `options.target`'s eIM, fleet and SM-DP+ ([`live::iot`]) and builds its
/// summary, marked as such. The signature work happens at the target and
/// in the devices' eUICCs and is not counted here.
pub async fn simulate_live_iot(
    scenario: &Scenario,
    options: &live::LiveOptions,
    access: live::iot::IotAccess,
    issuer: std::sync::Arc<live::EumIssuer>,
    progress: &mut dyn FnMut(&live::LiveProgress),
) -> Result<(Collected, ferrosim_telemetry::MetricsReport, Summary), SimError> {
    let started = std::time::Instant::now();
    let (collected, figures) = live::iot::run(scenario, options, access, issuer, progress).await?;
    let metrics = collected.metrics();
    let wall_s = started.elapsed().as_secs_f64();
    let mut summary = Summary::new(&collected, &metrics, cost::MeasuredCosts::default(), wall_s);
    summary.full_fidelity_iot = Some(figures);
    Ok((collected, metrics, summary))
}
