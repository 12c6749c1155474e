//! The headline metrics on hand-built fixtures with known answers
//! (docs/METRICS.md defines them; every number below is worked out there
//! too, in "Worked example").

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_telemetry::metrics::{MetricsQuery, compute_slice};
use ferrosim_telemetry::suite::test_eid;
use ferrosim_telemetry::*;

const T0: i64 = 1_795_478_400_000;
const S: i64 = 1000;

struct Fx {
    dict: Dictionary,
    events: Vec<Event>,
}

impl Fx {
    fn new() -> Self {
        Self {
            dict: Dictionary::new(),
            events: Vec::new(),
        }
    }

    fn push(&mut self, at_s: i64, id: u64, device: u32, carrier: &str, kind: EventKind) {
        self.push_ms(at_s * S, id, device, carrier, kind);
    }

    fn push_ms(&mut self, at_ms: i64, id: u64, device: u32, carrier: &str, kind: EventKind) {
        let dims = Dims {
            carrier: Some(self.dict.intern(carrier).unwrap()),
            smdp: Some(self.dict.intern("dp1").unwrap()),
            ..Dims::default()
        };
        self.events.push(Event {
            at: Timestamp(T0 + at_ms),
            activation: CorrelationId::new(id),
            device: test_eid(device),
            source: Source::Smdp,
            dims,
            kind,
        });
    }

    fn start(&mut self, at: i64, id: u64, carrier: &str, iot: bool) {
        let kind = if iot {
            ActivationKind::EimDownload
        } else {
            ActivationKind::OrderDownload
        };
        self.push(
            at,
            id,
            id as u32,
            carrier,
            EventKind::ActivationStarted { kind, iot },
        );
    }

    fn step(
        &mut self,
        at: i64,
        id: u64,
        carrier: &str,
        function: Function,
        status: StepStatus,
        bpp: u32,
    ) {
        let kind = EventKind::Step {
            function,
            status,
            duration_ms: 50,
            signalling_bytes: 1000,
            bpp_bytes: bpp,
        };
        self.push(at, id, id as u32, carrier, kind);
    }

    /// A full ES9+ download: 4 steps, 4000 signalling bytes, 20000 BPP bytes.
    fn download(&mut self, at: i64, id: u64, carrier: &str) {
        use Function::*;
        for f in [
            Es9InitiateAuthentication,
            Es9AuthenticateClient,
            Es9GetBoundProfilePackage,
            Es9HandleNotification,
        ] {
            let bpp = if f == Es9GetBoundProfilePackage {
                20_000
            } else {
                0
            };
            self.step(at, id, carrier, f, StepStatus::Ok, bpp);
        }
    }

    fn installed(&mut self, at: i64, id: u64, carrier: &str, profile: u32) {
        let kind = EventKind::Euicc {
            profile: Some(p(profile)),
            outcome: EuiccOutcome::Installed,
        };
        self.push(at, id, id as u32, carrier, kind);
    }

    fn profile(&mut self, at: i64, device: u32, change: ProfileChange, profile: u32) {
        self.push_device(
            at,
            device,
            "acme",
            EventKind::Profile {
                profile: p(profile),
                change,
            },
        );
    }

    fn push_device(&mut self, at: i64, device: u32, carrier: &str, kind: EventKind) {
        self.push(at, 0, device, carrier, kind);
    }
}

fn p(n: u32) -> ProfileKey {
    ProfileKey::from_digits(&format!("89440000000000{n:05}")).unwrap()
}

fn failed(code: &str) -> StepStatus {
    StepStatus::Failed(code.parse().unwrap())
}

/// The ten activations of docs/METRICS.md "Worked example".
fn ten_activations() -> Fx {
    use Function::*;
    let mut fx = Fx::new();
    // A1: clean download, installed after 20 s, enabled.
    fx.start(0, 1, "acme", false);
    fx.download(10, 1, "acme");
    fx.installed(20, 1, "acme", 1);
    fx.profile(25, 1, ProfileChange::Enabled, 1);
    // A2: confirmation refused at 105 s, retry installs at 159 s (59 s): within.
    fx.start(100, 2, "acme", false);
    fx.step(104, 2, "acme", Es9InitiateAuthentication, StepStatus::Ok, 0);
    fx.step(
        105,
        2,
        "acme",
        Es9AuthenticateClient,
        failed("8.2.6/3.8"),
        0,
    );
    fx.download(150, 2, "acme");
    fx.installed(159, 2, "acme", 2); // never enabled
    // A3: BPP download unreachable at 210 s, installed at 261 s (61 s): late.
    fx.start(200, 3, "acme", false);
    fx.step(205, 3, "acme", Es9InitiateAuthentication, StepStatus::Ok, 0);
    fx.step(206, 3, "acme", Es9AuthenticateClient, StepStatus::Ok, 0);
    fx.step(
        210,
        3,
        "acme",
        Es9GetBoundProfilePackage,
        StepStatus::Unreachable,
        0,
    );
    fx.download(250, 3, "acme");
    fx.installed(261, 3, "acme", 3);
    fx.profile(270, 3, ProfileChange::Enabled, 3);
    // A4: never ends (one step, then silence).
    fx.start(300, 4, "acme", false);
    fx.step(301, 4, "acme", Es9InitiateAuthentication, StepStatus::Ok, 0);
    // A5: IoT, installed at 410 s, registration rejected at 415 s, registered
    // on the new profile at 430 s: success at 30 s, recovery 15 s.
    fx.start(400, 5, "acme", true);
    fx.download(405, 5, "acme");
    fx.installed(410, 5, "acme", 5);
    let reject = EventKind::Registration {
        profile: Some(p(5)),
        outcome: RegistrationOutcome::Rejected { cause: 15 },
    };
    fx.push(415, 5, 5, "acme", reject);
    let ok5 = EventKind::Registration {
        profile: Some(p(5)),
        outcome: RegistrationOutcome::Registered,
    };
    fx.push(430, 5, 5, "acme", ok5);
    // A6: IoT with clock skew: the device's registration on the new profile
    // is stamped 515 s, before the installation result (520 s).
    fx.start(500, 6, "acme", true);
    fx.download(505, 6, "acme");
    let ok6 = EventKind::Registration {
        profile: Some(p(6)),
        outcome: RegistrationOutcome::Registered,
    };
    fx.push(515, 6, 6, "acme", ok6);
    fx.installed(520, 6, "acme", 6);
    // A7: the eUICC refuses the package; never recovers.
    fx.start(600, 7, "globex", false);
    fx.download(605, 7, "globex");
    let refused = EventKind::Euicc {
        profile: Some(p(7)),
        outcome: EuiccOutcome::Failed {
            stage: EuiccStage::LoadBoundProfilePackage { bpp_command_id: 3 },
            reason: 8,
        },
    };
    fx.push(610, 7, 7, "globex", refused);
    // A8 and A9: the same profile downloaded twice (two activations).
    fx.start(700, 8, "globex", false);
    fx.download(705, 8, "globex");
    fx.installed(710, 8, "globex", 8);
    fx.start(800, 9, "globex", false);
    fx.download(805, 9, "globex");
    fx.installed(810, 9, "globex", 8);
    fx.profile(820, 9, ProfileChange::Enabled, 8);
    // A10: started 10 s before the evaluation: pending.
    fx.start(3590, 10, "acme", false);
    fx.step(
        3590,
        10,
        "acme",
        Es9InitiateAuthentication,
        StepStatus::Ok,
        0,
    );
    // Profiles from before the window: P0 still enabled, P99 deleted.
    fx.profile(-100, 50, ProfileChange::Enabled, 0);
    fx.profile(-90, 51, ProfileChange::Enabled, 99);
    fx.profile(-80, 51, ProfileChange::Deleted, 99);
    // Connectivity outside activations.
    fx.push_device(
        900,
        60,
        "globex",
        EventKind::Registration {
            profile: None,
            outcome: RegistrationOutcome::NoResponse,
        },
    );
    fx.push_device(901, 60, "globex", EventKind::HandoverFailure { cause: 17 });
    fx.push_device(902, 61, "acme", EventKind::HandoverFailure { cause: 3 });
    for i in 1..=10u32 {
        let kind = EventKind::DataPath {
            latency_ms: i * 10,
            loss_permille: if i == 10 { 100 } else { 0 },
        };
        fx.push_device(1000 + i64::from(i), 62, "acme", kind);
    }
    fx
}

fn hour_query() -> MetricsQuery {
    MetricsQuery::window(Timestamp(T0), Timestamp(T0 + 3600 * S))
}

#[test]
fn ten_activations_exact() {
    let fx = ten_activations();
    let mut q = hour_query();
    q.incidents = true;
    let m = compute_slice(&fx.events, &q, &fx.dict).total;

    let a = &m.activations;
    assert_eq!((a.started, a.pending, a.decided), (10, 1, 9));
    assert_eq!((a.within_target, a.late, a.not_successful), (6, 1, 2));
    assert_eq!(a.success_ratio, Some(6.0 / 9.0));
    // Times to success: 20, 59, 61, 30, 20, 10, 10 s.
    assert_eq!(a.time_to_success_ms.count, 7);
    assert_eq!(a.time_to_success_ms.p50, Some(20_000));
    assert_eq!(a.time_to_success_ms.max, Some(61_000));

    let r = &m.recovery;
    assert_eq!((r.failed, r.recovered, r.unrecovered), (4, 3, 1));
    assert_eq!(r.total_recovery_ms, 54_000 + 51_000 + 15_000);
    assert_eq!(r.mttr_ms, Some(40_000.0));
    let causes: Vec<(&str, u64, Option<f64>)> = r
        .by_cause
        .iter()
        .map(|c| (c.cause.as_str(), c.failed, c.mttr_ms))
        .collect();
    assert_eq!(
        causes,
        vec![
            ("es9plus.authenticateClient 8.2.6/3.8", 1, Some(54_000.0)),
            (
                "es9plus.getBoundProfilePackage unreachable",
                1,
                Some(51_000.0)
            ),
            ("euicc load_bound_profile_package#3 reason 8", 1, None),
            ("registration rejected cause 15", 1, Some(15_000.0)),
        ]
    );
    assert_eq!(m.incidents.len(), 4);
    assert_eq!(m.incidents[0].activation, 2);
    assert_eq!(m.incidents[0].recovery_ms, Some(54_000));
    assert_eq!(m.incidents[3].recovered_at, None, "A7");

    let b = &m.bytes;
    assert_eq!(b.signalling_bytes, 39_000);
    assert_eq!(b.bpp_bytes, 160_000);
    assert_eq!(b.active_profiles, 6, "P0 P1 P3 P5 P6 P8");
    assert_eq!(b.bytes_per_active_profile, Some(199_000.0 / 6.0));
    assert_eq!((b.downloads, b.profiles_downloaded), (7, 6), "P8 twice");
    assert_eq!(b.downloaded_never_enabled, 1, "P2");

    let c = &m.connectivity;
    assert_eq!((c.registration_attempts, c.registrations_ok), (4, 2));
    assert_eq!(c.registration_success_rate, Some(0.5));
    assert_eq!(c.handover_failures, 2);
    assert_eq!(c.data_path_checks, 10);
    assert_eq!(
        (c.latency_ms.p50, c.latency_ms.p90, c.latency_ms.p99),
        (Some(50), Some(90), Some(100))
    );
    assert_eq!(c.mean_loss_permille, Some(10.0));
    assert_eq!(c.data_path_ok, 10);
    assert_eq!(c.data_path_success_rate, Some(1.0));
}

#[test]
fn data_path_success_counts_checks_with_a_probe_through() {
    // A wrong APN: registered, but every probe lost (1000 per mille).
    let mut fx = Fx::new();
    for (i, loss) in [0u16, 999, 1000, 1000].into_iter().enumerate() {
        let kind = EventKind::DataPath {
            latency_ms: 20,
            loss_permille: loss,
        };
        fx.push_device(2000 + i as i64, 10, "acme", kind);
    }
    let r = compute_slice(&fx.events, &hour_query(), &fx.dict);
    let c = &r.total.connectivity;
    assert_eq!((c.data_path_checks, c.data_path_ok), (4, 2));
    assert_eq!(c.data_path_success_rate, Some(0.5));
    let none = compute_slice(&[], &hour_query(), &fx.dict);
    assert_eq!(none.total.connectivity.data_path_success_rate, None);
}

#[test]
fn grouped_by_carrier() {
    let fx = ten_activations();
    let mut q = hour_query();
    q.group_by = Some(Dimension::Carrier);
    let report = compute_slice(&fx.events, &q, &fx.dict);
    let labels: Vec<&str> = report.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["acme", "globex"]);
    let acme = report.group("acme").unwrap();
    assert_eq!((acme.activations.started, acme.activations.decided), (7, 6));
    assert_eq!(acme.activations.within_target, 4);
    assert_eq!(acme.recovery.mttr_ms, Some(40_000.0));
    let globex = report.group("globex").unwrap();
    assert_eq!(globex.activations.success_ratio, Some(2.0 / 3.0));
    assert_eq!(
        (globex.recovery.failed, globex.recovery.unrecovered),
        (1, 1)
    );
    assert_eq!(
        globex.bytes.active_profiles, 1,
        "P8 once although downloaded twice"
    );
    assert_eq!(globex.bytes.bytes_per_active_profile, Some(72_000.0));
    assert_eq!(globex.connectivity.registration_attempts, 1);
    // Groups add up to the total.
    assert_eq!(report.total.activations.started, 10);
    assert_eq!(report.total.bytes.active_profiles, 6);
}

#[test]
fn rollout_gate_asks_about_a_set_of_devices() {
    let fx = ten_activations();
    let q = MetricsQuery::for_devices(
        [test_eid(8), test_eid(9)],
        Timestamp(T0),
        Timestamp(T0 + 3600 * S),
        Timestamp(T0 + 3600 * S),
    );
    let m = compute_slice(&fx.events, &q, &fx.dict).total;
    assert_eq!((m.activations.started, m.activations.within_target), (2, 2));
    assert_eq!(m.recovery.failed, 0);
}

#[test]
fn exactly_sixty_seconds_is_within_and_pending_until_known() {
    let mut fx = Fx::new();
    fx.start(0, 1, "acme", false);
    fx.push_ms(
        60_000,
        1,
        1,
        "acme",
        EventKind::Euicc {
            profile: None,
            outcome: EuiccOutcome::Installed,
        },
    );
    fx.start(0, 2, "acme", false);
    fx.push_ms(
        60_001,
        2,
        2,
        "acme",
        EventKind::Euicc {
            profile: None,
            outcome: EuiccOutcome::Installed,
        },
    );
    let at = |ms: i64| {
        let mut q = MetricsQuery::window(Timestamp(T0), Timestamp(T0 + 1));
        q.as_of = Timestamp(T0 + ms);
        compute_slice(&fx.events, &q, &fx.dict).total.activations
    };
    let a = at(59_999);
    assert_eq!((a.pending, a.decided), (2, 0), "nothing known before 60 s");
    assert_eq!(a.success_ratio, None);
    let a = at(60_000);
    assert_eq!((a.within_target, a.not_successful, a.pending), (1, 1, 0));
    let a = at(60_001);
    assert_eq!((a.within_target, a.late, a.not_successful), (1, 1, 0));
}

#[test]
fn clock_skew_never_makes_negative_intervals() {
    // Instance B's clock is 5 s behind instance A's: the installation result
    // it records is stamped before A's first step. The activation starts at
    // its earliest event, so it took 0 s, not -2 s.
    let mut fx = Fx::new();
    fx.step(
        10,
        1,
        "acme",
        Function::Es9InitiateAuthentication,
        StepStatus::Ok,
        0,
    );
    fx.step(
        11,
        1,
        "acme",
        Function::Es9AuthenticateClient,
        failed("8.1/6.1"),
        0,
    );
    fx.push(
        8,
        1,
        1,
        "acme",
        EventKind::Euicc {
            profile: None,
            outcome: EuiccOutcome::Installed,
        },
    );
    let m = compute_slice(&fx.events, &hour_query(), &fx.dict).total;
    assert_eq!(m.activations.within_target, 1);
    assert_eq!(m.activations.time_to_success_ms.max, Some(0));
    // The failure stamped after the success is not a failure of the activation.
    assert_eq!(m.recovery.failed, 0);
}

#[test]
fn unnamed_registration_before_installation_does_not_count() {
    // An IoT device registering on its old profile (unnamed in the report)
    // before the new one is installed has not activated the new one.
    let mut fx = Fx::new();
    fx.start(0, 1, "acme", true);
    fx.push(
        5,
        1,
        1,
        "acme",
        EventKind::Registration {
            profile: None,
            outcome: RegistrationOutcome::Registered,
        },
    );
    fx.installed(10, 1, "acme", 1);
    let mut q = hour_query();
    q.as_of = Timestamp(T0 + 70 * S);
    let a = compute_slice(&fx.events, &q, &fx.dict).total.activations;
    assert_eq!((a.within_target, a.not_successful), (0, 1));
    fx.push(
        75,
        1,
        1,
        "acme",
        EventKind::Registration {
            profile: None,
            outcome: RegistrationOutcome::Registered,
        },
    );
    let a = compute_slice(&fx.events, &hour_query(), &fx.dict)
        .total
        .activations;
    assert_eq!((a.within_target, a.late), (0, 1), "registered at 75 s");
}

#[test]
fn order_of_events_does_not_matter() {
    let fx = ten_activations();
    let mut reversed = fx.events.clone();
    reversed.reverse();
    let a = compute_slice(&fx.events, &hour_query(), &fx.dict);
    let mut b = compute_slice(&reversed, &hour_query(), &fx.dict);
    // Same-instant events change arrival order; no metric depends on it here.
    b.total.incidents.clear();
    assert_eq!(a.total, b.total);
}

#[test]
fn empty_input_gives_empty_metrics() {
    let dict = Dictionary::new();
    let r = compute_slice(&[], &hour_query(), &dict);
    assert!(r.groups.is_empty());
    assert_eq!(r.total.activations.success_ratio, None);
    assert_eq!(r.total.bytes.bytes_per_active_profile, None);
    assert_eq!(r.total.connectivity.latency_ms.p50, None);
}

#[test]
fn reinstalled_after_deletion_and_never_enabled_again() {
    let mut fx = Fx::new();
    fx.start(0, 1, "acme", false);
    fx.installed(1, 1, "acme", 1);
    fx.profile(2, 1, ProfileChange::Enabled, 1);
    fx.profile(3, 1, ProfileChange::Deleted, 1);
    fx.start(10, 2, "acme", false);
    fx.installed(11, 2, "acme", 1);
    let b = compute_slice(&fx.events, &hour_query(), &fx.dict)
        .total
        .bytes;
    assert_eq!(
        (
            b.downloads,
            b.profiles_downloaded,
            b.downloaded_never_enabled
        ),
        (2, 1, 1)
    );
    assert_eq!(b.active_profiles, 1, "it was in use inside the window");
}
