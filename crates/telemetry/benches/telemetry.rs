//! Ingestion and metric computation throughput, and memory per event.
//!
//! `cargo bench -p ferrosim-telemetry` (numbers in BENCHMARKS.md).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed bench

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrosim_telemetry::suite::test_eid;
use ferrosim_telemetry::*;

/// A realistic mix: per activation 5 ES9+ steps, an eUICC result, an enable,
/// a registration and a data-path report.
fn synthetic(dict: &Dictionary, activations: u32) -> Vec<Event> {
    let carriers: Vec<Sym> = (0..8)
        .map(|i| dict.intern(&format!("carrier-{i}")).unwrap())
        .collect();
    let smdp = dict.intern("dp1").unwrap();
    let mut out = Vec::with_capacity(activations as usize * 9);
    for a in 0..activations {
        let id = CorrelationId::new(u64::from(a) + 1);
        let device = test_eid(a);
        let dims = Dims {
            carrier: Some(carriers[(a % 8) as usize]),
            smdp: Some(smdp),
            ..Dims::default()
        };
        let t0 = 1_795_478_400_000 + i64::from(a) * 50;
        let profile = ProfileKey::from_digits(&format!("894400000{a:010}")).unwrap();
        let ev = |dt: i64, kind: EventKind| Event {
            at: Timestamp(t0 + dt),
            activation: id,
            device,
            source: Source::Smdp,
            dims,
            kind,
        };
        out.push(ev(
            0,
            EventKind::ActivationStarted {
                kind: ActivationKind::EimDownload,
                iot: true,
            },
        ));
        for (i, f) in [
            Function::Es9InitiateAuthentication,
            Function::Es9AuthenticateClient,
            Function::Es9GetBoundProfilePackage,
            Function::Es9HandleNotification,
        ]
        .into_iter()
        .enumerate()
        {
            let status = if a % 50 == 0 && i == 1 {
                StepStatus::Failed("8.2.6/3.8".parse().unwrap())
            } else {
                StepStatus::Ok
            };
            out.push(ev(
                100 * i as i64,
                EventKind::Step {
                    function: f,
                    status,
                    duration_ms: 40,
                    signalling_bytes: 1500,
                    bpp_bytes: if i == 2 { 24_000 } else { 0 },
                },
            ));
        }
        out.push(ev(
            1_000,
            EventKind::Euicc {
                profile: Some(profile),
                outcome: EuiccOutcome::Installed,
            },
        ));
        out.push(ev(
            1_500,
            EventKind::Profile {
                profile,
                change: ProfileChange::Enabled,
            },
        ));
        out.push(ev(
            3_000,
            EventKind::Registration {
                profile: Some(profile),
                outcome: RegistrationOutcome::Registered,
            },
        ));
        out.push(ev(
            4_000,
            EventKind::DataPath {
                latency_ms: 50 + a % 100,
                loss_permille: 0,
            },
        ));
    }
    out.sort_by_key(|e| e.at);
    out
}

fn ingestion(c: &mut Criterion) {
    let dict = Dictionary::new();
    let events = synthetic(&dict, 10_000);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("mem_store_record", |b| {
        b.iter(|| {
            let store = MemTelemetryStore::with_dictionary(dict.clone());
            for e in &events {
                store.record(*e);
            }
            store.len()
        })
    });
    g.finish();
    let store = MemTelemetryStore::with_dictionary(dict.clone());
    store.record_all(&events);
    eprintln!(
        "memory: {} events, {} bytes each ({} bytes of capacity in total)",
        store.len(),
        std::mem::size_of::<Event>(),
        store.memory_bytes()
    );
}

fn prometheus(c: &mut Criterion) {
    let dict = Dictionary::new();
    let events = synthetic(&dict, 10_000);
    let prom = PromMetrics::new(dict.clone(), 64);
    let mut g = c.benchmark_group("prometheus");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("observe_event_and_track", |b| {
        b.iter(|| {
            let mut tracker = ActivationTracker::new(600_000);
            for e in &events {
                prom.observe_event(e);
                if let Some(o) = tracker.handle_event(e) {
                    prom.observe_outcome(&o);
                }
            }
            tracker.open()
        })
    });
    g.finish();
}

fn metrics(c: &mut Criterion) {
    let dict = Dictionary::new();
    let events = synthetic(&dict, 10_000);
    let from = events[0].at;
    let to = Timestamp(events[events.len() - 1].at.millis() + 1);
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(20);
    for (name, group_by) in [
        ("compute_total", None),
        ("compute_by_carrier", Some(Dimension::Carrier)),
    ] {
        let mut q = MetricsQuery::window(from, to);
        q.group_by = group_by;
        g.bench_function(name, |b| {
            b.iter(|| compute_slice(&events, &q, &dict).total.activations.decided)
        });
    }
    g.finish();
}

criterion_group!(benches, ingestion, prometheus, metrics);
criterion_main!(benches);
