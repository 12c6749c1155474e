//! The second act of `ferrosim demo`: IoT devices with staged fallbacks
//! ride out a carrier outage.
//!
//! It plays the shipped `outage` scenario of `ferrosim-sim` in virtual
//! time, narrowed to a demo: a few thousand devices (each with an active
//! profile and a staged fallback with the fallback attribute), carrier A
//! failing in three of the city's eight areas for 30 minutes. The devices
//! there fail over to their fallback on carrier B by their rule (three
//! failed registrations, or the outage the fleet detects from A's failure
//! rate in the area; eIM enable with rollback, at most 10 % of the devices
//! staged on B per minute) before A's operations centre declares the
//! outage 5 minutes in; it declares it over 2 minutes after A recovers, and
//! the devices return after the 15-minute dwell. The fleet engine, the eIM core
//! (signed packages, verified results) and the virtual eUICCs are the real
//! ones; the networks and the devices' radios are the simulator's models.

use std::time::Instant;

use anyhow::Context;
use ferrosim_sim::report::SecondsPercentiles;
use ferrosim_sim::{RunOptions, Scenario, Summary, simulate};

/// Areas where carrier A fails in the demo (of the scenario's eight).
const AREAS: [&str; 3] = ["loop", "near-north-side", "lake-view"];

/// The demo's scenario: the shipped outage, `devices` strong, A failing in
/// [`AREAS`] only.
pub fn scenario(devices: u32) -> anyhow::Result<Scenario> {
    let mut s = Scenario::builtin("outage").context("the shipped outage scenario")?;
    s.scenario.devices = devices;
    for o in &mut s.outages {
        o.areas = AREAS.iter().map(|a| (*a).to_owned()).collect();
    }
    Ok(s)
}

/// Runs the act and prints its report.
pub fn run(devices: u32) -> anyhow::Result<Summary> {
    let s = scenario(devices)?;
    let outage = s
        .outages
        .first()
        .map(|o| (o.start.millis() / 60_000, o.end.millis() / 60_000))
        .unwrap_or_default();
    println!();
    println!(
        "Act two: {devices} IoT devices with staged fallbacks, carrier A down in {} of {} areas \
         from minute {} to {} (virtual time, ferrosim-sim)",
        AREAS.len(),
        s.areas.len(),
        outage.0,
        outage.1
    );
    let t = Instant::now();
    let options = RunOptions {
        devices: Some(devices),
        ..RunOptions::default()
    };
    let (_, _, summary) =
        simulate(&s, &options, &mut |_| {}).context("the fleet act's simulation")?;
    report(&summary, t.elapsed().as_secs_f64());
    Ok(summary)
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.0} s"))
}

fn line(p: &SecondsPercentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  max {}  ({} completed)",
        secs(p.p50),
        secs(p.p90),
        secs(p.p99),
        secs(p.max),
        p.count
    )
}

fn report(s: &Summary, wall_s: f64) {
    println!("Failover report");
    println!("  failovers decided:               {}", s.failovers);
    println!(
        "  failover (decision to registered on the fallback): {}",
        line(&s.failover_completion_s)
    );
    println!(
        "  returns decided:                 {}  (after A was healthy for the 15-minute dwell)",
        s.returns
    );
    println!(
        "  return (decision to registered on the primary):   {}",
        line(&s.return_completion_s)
    );
    println!("  rollbacks by the IPA:            {}", s.rollbacks);
    println!(
        "  most devices without service:    {}",
        s.peak_without_service
    );
    println!(
        "  registration success:            {}",
        s.registration_success_rate
            .map_or_else(|| "-".to_owned(), |r| format!("{:.2} %", 100.0 * r))
    );
    println!(
        "  simulated {:.0} min in {wall_s:.1} s ({} fleet decisions, {} actions)",
        s.simulated_s / 60.0,
        s.fleet_decisions,
        s.fleet_actions
    );
}
