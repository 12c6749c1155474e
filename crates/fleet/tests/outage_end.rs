//! A detected carrier outage ends once the carrier works again, also when
//! every device of the region has failed over and nobody is left on the
//! carrier to measure it: the probes (one device returning with rollback
//! per probe interval) are then the measurement, and a probe that
//! registers is not sent away again by the outage it is measuring.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{World, spec};
use ferrosim_fleet::decision::{Reason, What};
use ferrosim_fleet::device::Mode;
use proptest::prelude::*;

/// `n` devices in region north, provisioned.
fn region_of(n: u32, seed: u64) -> World {
    let mut w = World::new(common::EXAMPLE, seed);
    for i in 0..n {
        w.add(spec(i, "meters", "north"));
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), n as usize, "provisioned");
    w.step = Duration::from_secs(5);
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    /// Carrier A fails in one region long enough for the outage to be
    /// detected (a dozen devices report enough samples before their own failures move them) and for every
    /// device there to fail over; then it recovers. The example fleet moves
    /// at most a tenth of a group per minute (at least one device), so the
    /// last of 12 devices fails over about 12 minutes after the outage is
    /// detected (one minute after it starts): the outage lasts at least 14. The outage ends, every
    /// device is back on A within the probe interval, the detection window,
    /// the return dwell and the switching time, and no device switched more
    /// often than its rule allows in any hour.
    #[test]
    fn a_detected_outage_ends_after_every_device_of_its_region_failed_over(
        seed in 0u64..1000,
        n in 8u32..=12,
        down_min in 14u64..40,
    ) {
        let mut w = region_of(n, seed);
        let (a, b) = (w.carrier("carrier-a"), w.carrier("carrier-b"));
        w.down.insert((a, "north".into()));
        w.run_for(Duration::from_secs(down_min * 60));
        let detected = w.decisions.iter().any(|d| matches!(d.what, What::OutageStart { carrier, .. } if carrier == a));
        prop_assert!(detected, "{n} devices report enough to detect the outage");
        let on_b = w.devices.keys().filter(|e| w.enabled_carrier(e) == Some(b)).count();
        prop_assert_eq!(on_b, n as usize, "every device of the region failed over");

        let recovered_at = w.now;
        let ends_before = w.decisions.iter().filter(|d| matches!(d.what, What::OutageEnd { carrier, .. } if carrier == a)).count();
        w.down.clear();
        w.run_for(Duration::from_secs(75 * 60));
        let end = w.decisions.iter().filter(|d| matches!(d.what, What::OutageEnd { carrier, .. } if carrier == a)).nth(ends_before);
        prop_assert!(end.is_some(), "the outage of A ended after it recovered");
        let end = end.unwrap();
        // A probe goes within two probe intervals (one may have left just
        // before the recovery and rolled back) and reports within 30 s.
        prop_assert!(end.at > recovered_at && end.at.since(recovered_at) <= Duration::from_secs(11 * 60),
            "ended {:?} after the recovery", end.at.since(recovered_at));
        prop_assert!(
            matches!(end.reason, Reason::ProbeSucceeded { registrations, .. } if registrations >= 1)
                || matches!(end.reason, Reason::FailureRate { .. }),
            "{:?}", end
        );
        // Returns wait for the dwell after the end (hysteresis); a device
        // that spent its hour's switch budget on probes waits for it too,
        // so everyone is back within the hour plus a minute per device.
        let returns: Vec<_> = w.decisions.iter().filter(|d| matches!(d.what, What::Switch { failover: false, .. }) && d.at > end.at).collect();
        for d in &returns {
            if let Reason::PrimaryHealthy { healthy_for_s, dwell_s, .. } = d.reason {
                prop_assert!(healthy_for_s >= dwell_s && d.at.since(end.at) >= Duration::from_secs(15 * 60), "{:?}", d);
            }
        }
        let bound = Duration::from_secs((60 + u64::from(n) + 1) * 60);
        prop_assert!(returns.last().is_some_and(|d| d.at.since(recovered_at) <= bound));
        for e in w.devices.keys() {
            prop_assert_eq!(w.enabled_carrier(e), Some(a), "device {} back on A", e);
            prop_assert_eq!(w.fleet.device(e).unwrap().desired.mode, Mode::Primary);
        }
        for (e, list) in &w.switches {
            let times: Vec<_> = list.iter().map(|s| s.0).collect();
            for (i, t) in times.iter().enumerate() {
                let in_hour = times[i..].iter().take_while(|x| x.millis() < t.millis() + 3_600_000).count();
                prop_assert!(in_hour <= 4, "device {} switched {} times in an hour: {:?}", e, in_hour, times);
            }
        }
        for d in &w.decisions {
            if let What::Switch { failover: true, .. } = d.what {
                // A probe that registered is not sent away by the outage
                // it measures: no failover at all once A works again.
                prop_assert!(d.at < recovered_at, "failover after the recovery: {:?}", d);
            }
        }
    }
}
