//! The Prometheus families: fed by the sample events through the tracker,
//! encoded, with bounded labels and no device identifiers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_telemetry::suite::test_eid;
use ferrosim_telemetry::*;

const SAMPLE: &str = include_str!("../testdata/sample-events.jsonl");

fn fed() -> (PromMetrics, String, Vec<Event>) {
    let dict = Dictionary::new();
    let events = read_jsonl(SAMPLE.as_bytes(), &dict).unwrap();
    let prom = PromMetrics::new(dict, 16);
    let mut tracker = ActivationTracker::new(600_000);
    for e in &events {
        prom.observe_event(e);
        if let Some(outcome) = tracker.handle_event(e) {
            prom.observe_outcome(&outcome);
        }
    }
    prom.eim_queue_depth.set(3);
    prom.outbox_backlog.set(2);
    prom.failover(None, None, "registration_rejected");
    prom.rollout_wave("started");
    prom.rollout_gate(true);
    prom.set_profiles_active(None, 5);
    prom.rollouts_active.set(1);
    prom.events_dropped
        .get_or_create(&prom::ReasonLabels {
            reason: "queue_full",
        })
        .inc();
    let text = prom.encode().unwrap();
    (prom, text, events)
}

#[test]
fn families_are_exposed_with_their_values() {
    let (_, text, events) = fed();
    for family in prom::FAMILIES {
        assert!(text.contains(family), "{family} missing in\n{text}");
    }
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/METRICS.md"
    ))
    .unwrap();
    for family in prom::FAMILIES {
        assert!(
            docs.contains(family),
            "{family} not documented in docs/METRICS.md"
        );
    }
    // The IoT activation of the sample succeeded 7 s after its first event.
    assert!(
        text.contains(
            r#"ferrosim_activations_total{kind="eim_download",carrier="acme",outcome="success"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"ferrosim_activation_duration_seconds_bucket{le="60.0",kind="eim_download",carrier="acme"} 1"#), "{text}");
    assert!(text.contains(r#"ferrosim_activation_duration_seconds_bucket{le="5.0",kind="eim_download",carrier="acme"} 0"#));
    assert!(text.contains(r#"ferrosim_function_calls_total{interface="es9plus",function="authenticateClient",status="8.2.6/3.8"} 1"#));
    assert!(text.contains(r#"ferrosim_function_calls_total{interface="esipa",function="getBoundProfilePackage",status="unreachable"} 1"#));
    assert!(text.contains(r#"ferrosim_ota_bytes_total{interface="es9plus",kind="bpp"} 24000"#));
    assert!(
        text.contains(r#"ferrosim_registrations_total{carrier="globex",result="no_response"} 1"#)
    );
    assert!(text.contains("ferrosim_eim_queue_depth 3"));
    // No device or profile identifier anywhere.
    for e in &events {
        assert!(!text.contains(&e.device.to_string()));
    }
    assert!(!text.contains("8944000000000000019"));
}

#[test]
fn carrier_labels_are_capped() {
    let dict = Dictionary::new();
    let prom = PromMetrics::new(dict.clone(), 3);
    for i in 0..10 {
        let carrier = dict.intern(&format!("carrier-{i}")).unwrap();
        prom.observe_event(&Event {
            at: Timestamp(0),
            activation: None,
            device: test_eid(i),
            source: Source::Device,
            dims: Dims {
                carrier: Some(carrier),
                ..Dims::default()
            },
            kind: EventKind::HandoverFailure { cause: 1 },
        });
    }
    let text = prom.encode().unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("ferrosim_handover_failures_total{"))
        .count();
    assert_eq!(series, 4, "3 carriers and `other`:\n{text}");
    assert!(text.contains(r#"ferrosim_handover_failures_total{carrier="other"} 7"#));
}

#[test]
fn tracker_times_out_activations_without_success() {
    let dict = Dictionary::new();
    let mut tracker = ActivationTracker::new(600_000);
    let e = Event {
        at: Timestamp(1_000),
        activation: CorrelationId::new(9),
        device: test_eid(1),
        source: Source::Smdp,
        dims: Dims {
            carrier: dict.intern("acme").ok(),
            ..Dims::default()
        },
        kind: EventKind::Step {
            function: Function::Es9InitiateAuthentication,
            status: StepStatus::Ok,
            duration_ms: 10,
            signalling_bytes: 0,
            bpp_bytes: 0,
        },
    };
    assert_eq!(tracker.handle_event(&e), None);
    assert_eq!(tracker.poll_timeout(Timestamp(600_999)), None);
    let out = tracker.poll_timeout(Timestamp(601_000)).unwrap();
    assert_eq!((out.id.get(), out.took_ms), (9, None));
    assert_eq!(tracker.open(), 0);
    assert_eq!(tracker.poll_timeout(Timestamp(i64::MAX)), None);
}

#[test]
fn prometheus_text_format() {
    let (prom, open, _) = fed();
    let text = prom.encode_prometheus().unwrap();
    assert!(open.contains("# TYPE ferrosim_activations counter"));
    assert!(text.contains("# TYPE ferrosim_activations_total counter"));
    assert!(text.contains("# HELP ferrosim_activations_total Activations that ended"));
    assert!(text.contains("# TYPE ferrosim_activation_duration_seconds histogram"));
    assert!(text.contains("# TYPE ferrosim_eim_queue_depth gauge"));
    assert!(!text.contains("# EOF"));
    // Samples are unchanged.
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(samples(&open), samples(&text));
}
