//! The eUICC notifications of the outage's switches (ExecuteFallbackMechanism
//! and ReturnFromFallback each sign a disable and an enable notification)
//! are signed while the device has lost its network: the IPA holds them on
//! the eUICC and hands them on once the device is registered again, and the
//! report counts those still pending at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosim_fleet::Span;
use ferrosim_sim::report::Summary;
use ferrosim_sim::{RunOptions, Scenario, simulate};

const DEVICES: u32 = 600;
const MIN: u64 = 60_000;

fn run(scenario: &Scenario) -> Summary {
    let options = RunOptions {
        devices: Some(DEVICES),
        seed: Some(7),
        shards: 2,
        threads: 2,
    };
    simulate(scenario, &options, &mut |_| {}).unwrap().2
}

/// The outage with carrier B also down in the `loop` area from `start` to
/// `end` (minutes), undeclared: the devices there that fail over onto B
/// have no service on it.
fn with_b_down_in_the_loop(start: u64, end: u64) -> Scenario {
    let mut s = Scenario::builtin("outage").unwrap();
    let mut b = s.outages[0].clone();
    b.carrier = "carrier-b".into();
    b.areas = vec!["loop".into()];
    b.start = Span(start * MIN);
    b.end = Span(end * MIN);
    b.declare_after = None;
    b.declare_end_after = None;
    s.outages.push(b);
    s
}

#[test]
fn switch_notifications_wait_for_service_and_none_is_lost() {
    // The shipped outage: every device that failed over and came back is
    // registered at the end, so every notification was handed on, each
    // after the device registered on the profile it switched to.
    let s = run(&Scenario::builtin("outage").unwrap());
    let n = &s.notifications;
    eprintln!("outage: {n:?}");
    assert!(s.failovers > 100 && s.returns > 100, "{s:?}");
    // Two per switch at least (the disable and the enable).
    assert!(
        n.counts.signed >= 2 * (s.failover_completion_s.count + s.return_completion_s.count),
        "{n:?} vs {s:?}"
    );
    assert_eq!(n.counts.handed_on, n.counts.signed, "{n:?}");
    assert_eq!(n.counts.pending_at_end, 0, "{n:?}");
    assert_eq!(n.wait_s.count, n.counts.handed_on);
    // None went out at the moment it was signed: each waited for a
    // registration (at least the attach's latency).
    let p50 = n.wait_s.p50.unwrap();
    assert!(p50 > 0.0, "{n:?}");

    // B down in the loop from minute 12 to 50: the devices there that
    // switched onto B kept their notifications until B came back (or
    // until they returned to A), minutes later.
    let s = run(&with_b_down_in_the_loop(12, 50));
    let n = &s.notifications;
    eprintln!("B down in the loop 12-50 min: {n:?}");
    assert_eq!(n.counts.handed_on, n.counts.signed, "{n:?}");
    assert_eq!(n.counts.pending_at_end, 0, "{n:?}");
    let max = n.wait_s.max.unwrap();
    assert!(max > 5.0 * 60.0, "the longest wait was {max} s: {n:?}");

    // B down in the loop until the end of the run: those devices never
    // have service again, and their notifications are reported pending.
    let mut stranded = with_b_down_in_the_loop(12, 90);
    stranded.scenario.duration = Span(30 * MIN);
    let s = run(&stranded);
    let n = &s.notifications;
    eprintln!("B down in the loop until the end: {n:?}");
    assert!(n.counts.pending_at_end > 0, "{n:?}");
    assert!(n.counts.handed_on > 0, "{n:?}");
    assert_eq!(
        n.counts.handed_on + n.counts.pending_at_end,
        n.counts.signed,
        "{n:?}"
    );
}
