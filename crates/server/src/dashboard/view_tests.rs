#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_telemetry::suite::test_eid;
use ferrosim_telemetry::{Dims, EuiccOutcome, EventKind, Function, Source, StepStatus};

use super::*;

fn ev(dict: &Dictionary, at: i64, activation: u64, device: u32, kind: EventKind) -> Event {
    Event {
        at: Timestamp(at),
        activation: CorrelationId::new(activation),
        device: test_eid(device),
        source: Source::Smdp,
        dims: Dims {
            carrier: dict
                .intern(if device.is_multiple_of(2) {
                    "acme"
                } else {
                    "globex"
                })
                .ok(),
            ..Dims::default()
        },
        kind,
    }
}

fn step(status: StepStatus) -> EventKind {
    EventKind::Step {
        function: Function::Es9AuthenticateClient,
        status,
        duration_ms: 10,
        signalling_bytes: 1000,
        bpp_bytes: 0,
    }
}

fn installed() -> EventKind {
    EventKind::Euicc {
        profile: None,
        outcome: EuiccOutcome::Installed,
    }
}

/// Device 1 succeeds at once, device 2 fails then recovers after 30 s,
/// device 3 fails and never recovers, device 4 has only just started.
fn fixture(dict: &Dictionary) -> Vec<Event> {
    let failed = StepStatus::Failed("8.2.6/3.8".parse().unwrap());
    vec![
        ev(dict, 0, 1, 1, step(StepStatus::Ok)),
        ev(dict, 5_000, 1, 1, installed()),
        ev(dict, 1_000, 2, 2, step(failed)),
        ev(dict, 31_000, 2, 2, installed()),
        ev(dict, 2_000, 3, 3, step(failed)),
        ev(dict, 199_000, 4, 4, step(StepStatus::Ok)),
    ]
}

#[test]
fn headline_and_fleet() {
    let dict = Dictionary::new();
    let events = fixture(&dict);
    let h = headline(&events, Timestamp(0), Timestamp(200_000), &dict);
    assert_eq!((h.started, h.decided, h.pending), (4, 3, 1));
    assert_eq!(h.within_target, 2);
    assert_eq!(h.success_ratio, Some(2.0 / 3.0));
    assert_eq!((h.failed, h.recovered, h.unrecovered), (2, 1, 1));
    assert_eq!(h.mttr_ms, Some(30_000.0));
    assert_eq!(h.bytes, 4_000);
    assert_eq!(
        fleet_health(&events),
        FleetHealth {
            devices: 4,
            healthy: 2,
            failing: 1,
            in_progress: 1
        }
    );
    assert_eq!(fleet_health(&[]), FleetHealth::default());
}

#[test]
fn carriers_series_and_failures() {
    let dict = Dictionary::new();
    let events = fixture(&dict);
    let c = carriers(&events, Timestamp(0), Timestamp(200_000), &dict, 0.99);
    let acme = c.iter().find(|c| c.carrier == "acme").unwrap();
    let globex = c.iter().find(|c| c.carrier == "globex").unwrap();
    assert_eq!(acme.headline.success_ratio, Some(1.0));
    assert_eq!(acme.health, "healthy");
    assert_eq!(globex.headline.success_ratio, Some(0.5));
    assert_eq!(globex.health, "failing");
    assert_eq!(health_of(None, 0.99), "no data");
    assert_eq!(health_of(Some(0.95), 0.99), "degraded");

    let s = series(&events, Timestamp(0), Timestamp(199_999), 4, &dict);
    assert_eq!(s.len(), 4);
    assert_eq!(s[0].from, Timestamp(0));
    assert_eq!(s[3].to, Timestamp(200_000));
    let started: u64 = s.iter().map(|b| b.headline.started).sum();
    assert_eq!(started, 4, "buckets add up");

    let f = failures(&events, Timestamp(0), Timestamp(200_000), &dict, 10);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].activation, 3, "latest failure first");
    assert_eq!(f[1].recovery_ms, Some(30_000));
    assert_eq!(
        failures(&events, Timestamp(0), Timestamp(200_000), &dict, 1).len(),
        1
    );
}

#[test]
fn burn_rate_alerts() {
    let dict = Dictionary::new();
    let now = 10 * 86_400_000i64;
    let failed = StepStatus::Failed("8.2.6/3.8".parse().unwrap());
    // Over the last 2 minutes: 1 success, 1 failure (50 % errors: 50x a 1 %
    // budget); nothing before.
    let events = vec![
        ev(&dict, now - 120_000, 1, 1, step(StepStatus::Ok)),
        ev(&dict, now - 119_000, 1, 1, installed()),
        ev(&dict, now - 110_000, 2, 2, step(failed)),
    ];
    let alerts = burn_alerts(&events, Timestamp(now), 0.99, &dict);
    assert_eq!(alerts.len(), 3);
    assert!(alerts.iter().all(|a| a.firing), "{alerts:?}");
    assert!((alerts[0].long_burn.unwrap() - 50.0).abs() < 1e-9);
    // Nothing decided: nothing fires.
    let none = burn_alerts(&[], Timestamp(now), 0.99, &dict);
    assert!(none.iter().all(|a| !a.firing && a.long_burn.is_none()));
    assert!((activation_objective() - 0.99).abs() < 1e-12);
}
