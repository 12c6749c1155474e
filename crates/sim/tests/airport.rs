//! The `airport` scenario at small scale: arriving passengers' phones
//! download their travel eSIM through the SM-DP+ at landing, in the day's
//! arrival waves, and leave the terminal's cells 45 minutes later. Both
//! directions for the congestion claim: with the terminals' cells shrunk so
//! that the same arrivals congest them, registrations fail more often and
//! activations within 60 s fall; with the scenario's cells they do not.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::{RunOptions, Scenario, Summary, simulate};

const DEVICES: u32 = 200;

fn run(cells_per_area: Option<u32>) -> (Summary, Vec<u64>) {
    let mut scenario = Scenario::builtin("airport").unwrap();
    if let Some(cells) = cells_per_area {
        scenario.carriers[0].cells_per_area = cells;
        scenario.carriers[0].capacity_per_cell = 1;
    }
    let options = RunOptions {
        devices: Some(DEVICES),
        seed: Some(2),
        shards: 2,
        threads: 2,
    };
    let (collected, _, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    let attached = collected.buckets.iter().map(|b| b.attached[0]).collect();
    (summary, attached)
}

#[test]
fn travellers_activate_at_landing_and_leave_the_terminal() {
    let (s, attached) = run(None);
    // Every phone scanned its code and downloaded its profile.
    assert_eq!(s.downloads, u64::from(DEVICES));
    assert_eq!(s.activations[0], u64::from(DEVICES));
    let ratio = s.activation_success_within_60s.unwrap();
    assert!(ratio > 0.9, "{ratio}");
    // Passengers leave 45 minutes after landing: the terminals never hold
    // everyone at once, and the waves show in the load.
    let peak = *attached.iter().max().unwrap();
    assert!(peak > 0 && peak < u64::from(DEVICES) / 4, "peak {peak}");
    // The night is quiet: nobody is on the cells in the first bucket.
    assert_eq!(attached[0], 0);
}

#[test]
fn congested_terminal_cells_cost_registrations_and_activations() {
    let (normal, _) = run(None);
    let (congested, _) = run(Some(1));
    let rate = |s: &Summary| s.registration_success_rate.unwrap();
    assert!(
        rate(&congested) < rate(&normal),
        "congested {} vs normal {}",
        rate(&congested),
        rate(&normal)
    );
    assert!(
        congested.activation_success_within_60s.unwrap()
            < normal.activation_success_within_60s.unwrap()
    );
}
