//! Fleet decision throughput and memory per device.
//!
//! `cargo bench -p ferrosim-fleet --bench fleet` prints, besides criterion's
//! timings, the bytes of state per device (the struct, and the process's
//! resident memory grown by registering a million devices).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrosim_fleet::config::ProfileRef;
use ferrosim_fleet::decision::What;
use ferrosim_fleet::device::{Capabilities, DeviceSpec, KnownProfile, Version};
use ferrosim_fleet::report::{Registration, ReportKind};
use ferrosim_fleet::{ActionResult, Catalog, Command, DeviceReport, DeviceState, Fleet, Outcome};
use ferrosim_ids::{Eid, Iccid, MatchingId, Timestamp};
use ferrosim_telemetry::Dictionary;
use rand::SeedableRng;
use rand::rngs::StdRng;

const CONFIG: &str = include_str!("../testdata/fleet.toml");
const T0: i64 = 1_796_083_200_000;

fn eid(n: u32) -> Eid {
    Eid::from_body(&format!("8904903200000000000000{n:08}")).unwrap()
}

fn pref(carrier: &str, t: &str) -> ProfileRef {
    ProfileRef {
        carrier: carrier.into(),
        profile_type: t.into(),
        version: 1,
    }
}

/// A fleet of `n` devices already holding their primary (enabled, working)
/// and their fallback (with the attribute), APNs delivered: converged.
fn fleet(n: u32, config: &str) -> (Fleet, StdRng, Timestamp) {
    let catalog = Catalog::from_toml(config, Dictionary::new()).unwrap();
    let now = Timestamp(T0);
    let mut f = Fleet::new(catalog, now);
    for i in 0..n {
        let spec = DeviceSpec {
            eid: eid(i),
            group: "meters".into(),
            vendor: "acme".into(),
            model: format!("m{}", i % 4),
            firmware: "2.1.0".into(),
            region: Some(if i % 2 == 0 { "north" } else { "south" }.into()),
            tags: vec![],
            capabilities: Some(Capabilities {
                sgp32_version: Version([1, 2, 0]),
                fallback_supported: true,
                rollback_supported: true,
                ipa_features: 2,
                ipa_protocols: 1,
            }),
            profiles: vec![
                KnownProfile {
                    iccid: Iccid::from_body(&format!("89440001{i:010}")).unwrap(),
                    profile_type: Some(pref("carrier-a", "iot")),
                    enabled: true,
                    fallback_attribute: false,
                    works: true,
                },
                KnownProfile {
                    iccid: Iccid::from_body(&format!("89440002{i:010}")).unwrap(),
                    profile_type: Some(pref("carrier-b", "fallback")),
                    enabled: false,
                    fallback_attribute: true,
                    works: false,
                },
            ],
        };
        f.add_device(&spec, now).unwrap();
    }
    let mut rng = StdRng::seed_from_u64(1);
    answer_all(&mut f, now, &mut rng);
    (f, rng, now)
}

fn answer_all(f: &mut Fleet, now: Timestamp, rng: &mut StdRng) -> u64 {
    let mut decisions = 0;
    loop {
        f.poll(now, rng);
        while f.poll_decision().is_some() {
            decisions += 1;
        }
        while f.poll_event().is_some() {}
        let mut any = false;
        while let Some(a) = f.poll_action() {
            any = true;
            let r = ActionResult {
                id: a.id,
                device: a.device,
                outcome: answer(&a),
            };
            f.handle_result(&r, now, rng).unwrap();
        }
        if !any {
            return decisions;
        }
    }
}

/// What the SM-DP+, eIM and device would answer (always success).
fn answer(a: &ferrosim_fleet::Action) -> Outcome {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    match &a.command {
        Command::Es2DownloadOrder { .. } => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Outcome::OrderReserved {
                iccid: Iccid::from_body(&format!("89440009{n:010}")).unwrap(),
            }
        }
        Command::Es2ConfirmOrder { .. } => Outcome::OrderConfirmed {
            matching_id: MatchingId::new(format!("M{}", a.id.0)).unwrap(),
        },
        Command::EimDownloadTrigger { iccid, .. } => Outcome::Installed {
            iccid: iccid.clone(),
        },
        _ => Outcome::Done,
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory_report() {
    println!(
        "size_of::<DeviceState>() = {} bytes",
        std::mem::size_of::<DeviceState>()
    );
    let before = rss_bytes();
    let start = Instant::now();
    let n = 1_000_000;
    let (f, _, _) = fleet(n, CONFIG);
    let took = start.elapsed();
    if let (Some(b), Some(a)) = (before, rss_bytes()) {
        println!(
            "1,000,000 devices registered and converged (1,000,000 APN actions and decisions) in {:.2} s; resident memory grew {} MB = {} bytes per device",
            took.as_secs_f64(),
            (a.saturating_sub(b)) / 1_000_000,
            (a.saturating_sub(b)) / u64::from(n)
        );
    }
    let snapshot = serde_json::to_vec(&f.snapshot(Timestamp(T0))).unwrap();
    println!(
        "snapshot of 1,000,000 devices: {} MB of JSON",
        snapshot.len() / 1_000_000
    );
    black_box(f);
}

/// A carrier outage over 100,000 devices: every device switches (rate
/// limit raised so the switch queue is not the bottleneck), counted as
/// decisions per second of wall time.
fn outage_report() {
    let config = CONFIG
        .replacen(
            "max_fraction_per_minute = 0.1",
            "max_fraction_per_minute = 1.0",
            1,
        )
        .replacen("jitter = \"20s\"", "jitter = \"0s\"", 1);
    let n = 100_000;
    let (mut f, mut rng, mut now) = fleet(n, &config);
    let start = Instant::now();
    f.declare_outage("carrier-a", None, now).unwrap();
    let mut decisions = 0;
    let mut switches = 0u64;
    for _ in 0..120 {
        f.poll(now, &mut rng);
        while let Some(d) = f.poll_decision() {
            decisions += 1;
            if matches!(d.what, What::Switch { .. }) {
                switches += 1;
            }
        }
        decisions += answer_all(&mut f, now, &mut rng);
        now = now.plus(Duration::from_secs(1));
        if switches == u64::from(n) {
            break;
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "outage of carrier-a under {n} devices: {switches} switches, {decisions} decisions in {took:.2} s = {:.0} decisions/s",
        decisions as f64 / took
    );
}

fn benches(c: &mut Criterion) {
    memory_report();
    outage_report();
    let n = 10_000u32;
    let (mut f, mut rng, now) = fleet(n, CONFIG);
    let eids: Vec<Eid> = (0..n).map(eid).collect();
    let mut group = c.benchmark_group("fleet");
    group.throughput(Throughput::Elements(u64::from(n)));
    group.bench_function("report_and_poll_10k", |b| {
        b.iter(|| {
            for e in &eids {
                let r = DeviceReport {
                    device: *e,
                    kind: ReportKind::DataPath {
                        latency_ms: 30,
                        loss_permille: 1000,
                    },
                };
                f.handle_report(&r, now).unwrap();
            }
            f.poll(now, &mut rng);
            while f.poll_decision().is_some() {}
        })
    });
    group.bench_function("failover_10k_devices", |b| {
        b.iter_batched(
            || {
                let config = CONFIG
                    .replacen(
                        "max_fraction_per_minute = 0.1",
                        "max_fraction_per_minute = 1.0",
                        1,
                    )
                    .replacen("jitter = \"20s\"", "jitter = \"0s\"", 1);
                fleet(n, &config)
            },
            |(mut f, mut rng, mut now)| {
                for e in &eids {
                    for _ in 0..3 {
                        let r = DeviceReport {
                            device: *e,
                            kind: ReportKind::Registration {
                                outcome: Registration::NoResponse,
                                plmn: None,
                            },
                        };
                        f.handle_report(&r, now).unwrap();
                    }
                }
                for _ in 0..70 {
                    answer_all(&mut f, now, &mut rng);
                    now = now.plus(Duration::from_secs(1));
                }
                black_box(f)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = fleet_benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10));
    targets = benches
}
criterion_main!(fleet_benches);
