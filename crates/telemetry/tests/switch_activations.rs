//! Failovers and rollout steps that switch to a profile already on the
//! eUICC: their eUICC result is the profile's `enabled` event (there is no
//! installation), and for IoT the registration on that profile completes
//! them (docs/METRICS.md, "Activation success within 60 s").

#![allow(clippy::unwrap_used)]

use ferrosim_telemetry::metrics::{MetricsQuery, compute_slice};
use ferrosim_telemetry::suite::test_eid;
use ferrosim_telemetry::*;

const T0: i64 = 1_795_478_400_000;

fn event(at_s: i64, id: u64, kind: EventKind) -> Event {
    Event {
        at: Timestamp(T0 + at_s * 1000),
        activation: CorrelationId::new(id),
        device: test_eid(id as u32),
        source: Source::Fleet,
        dims: Dims::default(),
        kind,
    }
}

#[test]
fn a_switch_succeeds_at_its_registration_on_the_enabled_profile() {
    let b = ProfileKey::from_digits("8944000200000000013").unwrap();
    let a = ProfileKey::from_digits("8944000100000000014").unwrap();
    let start = |id, kind| event(0, id, EventKind::ActivationStarted { kind, iot: true });
    let enabled = |at, id, p| {
        event(
            at,
            id,
            EventKind::Profile {
                profile: p,
                change: ProfileChange::Enabled,
            },
        )
    };
    let registered = |at, id, p| {
        event(
            at,
            id,
            EventKind::Registration {
                profile: Some(p),
                outcome: RegistrationOutcome::Registered,
            },
        )
    };
    let no_response = |at, id| {
        event(
            at,
            id,
            EventKind::Registration {
                profile: None,
                outcome: RegistrationOutcome::NoResponse,
            },
        )
    };
    let events = vec![
        // 1: failover, enabled at 10 s, registered on it at 12 s: 12 s.
        start(1, ActivationKind::Failover),
        enabled(10, 1, b),
        registered(12, 1, b),
        // 2: failover after a failed registration, done at 70 s: late, recovered.
        start(2, ActivationKind::Failover),
        no_response(5, 2),
        enabled(60, 2, b),
        registered(70, 2, b),
        // 3: enabled but registered only on another profile (rolled back): not successful.
        start(3, ActivationKind::RolloutStep),
        enabled(5, 3, b),
        registered(50, 3, a),
        // 4: an eIM download: an enable alone is no installation.
        start(4, ActivationKind::EimDownload),
        enabled(5, 4, b),
        registered(6, 4, b),
    ];
    let q = MetricsQuery::window(Timestamp(T0), Timestamp(T0 + 600_000));
    let m = compute_slice(&events, &q, &Dictionary::new()).total;
    assert_eq!(m.activations.started, 4);
    assert_eq!(m.activations.within_target, 1);
    assert_eq!(m.activations.late, 1);
    assert_eq!(m.activations.not_successful, 2);
    assert_eq!(m.activations.time_to_success_ms.p50, Some(12_000));
    assert_eq!(m.recovery.recovered, 1);
    assert_eq!(m.recovery.mttr_ms, Some(65_000.0));
}
