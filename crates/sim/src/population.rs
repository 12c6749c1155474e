//! The devices of a scenario: where they are, who made them, what they
//! hold, when they arrive, and how they retry.
//!
//! Device `n` is drawn from its own generator, seeded from the run's seed
//! and `n`, so what a device is does not depend on how the devices are
//! split into shards. EIDs are `89049032` followed by zeros and `n`
//! (with the EID check digits); each device's profiles have ICCIDs
//! `8944000<k>` + `n` for its k-th profile.

use ferrosim_fleet::config::FleetConfig;
use ferrosim_ids::{Eid, Iccid};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::SimError;
use crate::network::{AreaIx, CarrierIx, Network};
use crate::scenario::{Scenario, Vendor};

/// The EID prefix of simulated devices (the scenario's EUM range).
pub const EID_PREFIX: &str = "89049032";

/// What one device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSeed {
    /// Its EID.
    pub eid: Eid,
    /// Its area.
    pub area: AreaIx,
    /// Its vendor (index into the scenario's vendors).
    pub vendor: u8,
    /// Its mix (index into the scenario's mixes).
    pub mix: u8,
    /// When it arrives (ms from the start; 0: there from the start).
    pub arrival_ms: i64,
    /// Its profiles as deployed (ICCID, carrier); the first is enabled.
    /// A consumer phone holds none yet: its one entry is the profile it
    /// will download (the ICCID the SM-DP+ assigns replaces this one).
    pub profiles: Vec<(Iccid, CarrierIx)>,
    /// A consumer phone with an LPA (else an IoT device with an IPA).
    pub consumer: bool,
}

#[derive(Debug, Clone)]
struct ResolvedMix {
    consumer: bool,
    group: String,
    primary: CarrierIx,
    fallback: Option<CarrierIx>,
}

/// The population of a run.
#[derive(Debug, Clone)]
pub struct Population {
    devices: u32,
    seed: u64,
    area_cdf: Vec<f64>,
    vendor_cdf: Vec<f64>,
    mix_cdf: Vec<f64>,
    mixes: Vec<ResolvedMix>,
    vendors: Vec<Vendor>,
    /// Arrival curve as (ms, cumulative share) points; empty: all at 0.
    arrival_cdf: Vec<(i64, f64)>,
    detect_within_ms: i64,
    retry_base_ms: i64,
    retry_max_ms: i64,
    give_up_after: u32,
    poll_within_ms: i64,
    /// The IPA reaches the eIM without service.
    pub poll_without_service: bool,
    scan_within_ms: i64,
    /// Virtual time of one APDU exchange with a consumer phone's eUICC.
    pub apdu_ms: i64,
    /// The SM-DP+'s own time per ES9+ call.
    pub es9_server_ms: i64,
    /// How long a device stays after arriving (0: to the end).
    pub stay_ms: i64,
}

impl Population {
    /// The population of `scenario` with `devices` devices.
    pub fn new(
        scenario: &Scenario,
        fleet: &FleetConfig,
        network: &Network,
        devices: u32,
        seed: u64,
    ) -> Result<Self, SimError> {
        let p = &scenario.population;
        let mut mixes = Vec::new();
        for m in &p.mixes {
            let group = fleet
                .groups
                .iter()
                .find(|g| g.name == m.group)
                .ok_or_else(|| {
                    SimError::Scenario(format!("population.mix: no fleet group {:?}", m.group))
                })?;
            let carrier = |name: &str| {
                network.carrier(name).ok_or_else(|| {
                    SimError::Scenario(format!(
                        "fleet group {:?} uses carrier {name:?}, which has no [[carrier]] network",
                        m.group
                    ))
                })
            };
            mixes.push(ResolvedMix {
                consumer: m.kind == crate::scenario::DeviceKind::Consumer,
                group: m.group.clone(),
                primary: carrier(&group.primary.carrier)?,
                fallback: group
                    .fallback
                    .as_ref()
                    .map(|f| carrier(&f.carrier))
                    .transpose()?,
            });
        }
        let arrival_cdf = if p.arrival.is_empty() {
            Vec::new()
        } else {
            // Trapezoids between the points give the cumulative share.
            let mut pts: Vec<(i64, f64)> = p
                .arrival
                .iter()
                .map(|(t, w)| (t.millis_i64(), *w))
                .collect();
            pts.sort_by_key(|(t, _)| *t);
            let mut cdf = vec![(pts[0].0, 0.0)];
            let mut total = 0.0;
            for w in pts.windows(2) {
                total += (w[1].0 - w[0].0) as f64 * (w[0].1 + w[1].1) / 2.0;
                cdf.push((w[1].0, total));
            }
            if total <= 0.0 {
                return Err(SimError::Scenario(
                    "population.arrival needs two points and a weight above 0 between them".into(),
                ));
            }
            cdf.iter_mut().for_each(|(_, c)| *c /= total);
            cdf
        };
        Ok(Self {
            devices,
            seed,
            area_cdf: cdf(scenario.areas.iter().map(|a| a.weight)),
            vendor_cdf: cdf(p.vendors.iter().map(|v| v.share)),
            mix_cdf: cdf(p.mixes.iter().map(|m| m.share)),
            mixes,
            vendors: p.vendors.clone(),
            arrival_cdf,
            detect_within_ms: p.detect_within.millis_i64(),
            retry_base_ms: p.retry_base.millis_i64(),
            retry_max_ms: p.retry_max.millis_i64(),
            give_up_after: p.give_up_after,
            poll_within_ms: p.poll_within.millis_i64(),
            poll_without_service: p.poll_without_service,
            scan_within_ms: p.scan_within.millis_i64(),
            apdu_ms: i64::from(p.apdu_ms),
            es9_server_ms: i64::from(p.es9_server_ms),
            stay_ms: p.stay.millis_i64(),
        })
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.devices == 0
    }

    /// The EID of device `n`: [`EID_PREFIX`], fourteen zeros, `n` in eight
    /// digits and the check digits. Built on the stack (the control plane
    /// asks for an EID per event of the run) and checked by [`Eid::parse`].
    pub fn eid(n: u32) -> Eid {
        let mut digits = [b'0'; 32];
        digits[..EID_PREFIX.len()].copy_from_slice(EID_PREFIX.as_bytes());
        let mut v = n % 100_000_000;
        for d in digits[22..30].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        // ISO 7064 MOD 97-10 over the body followed by "00".
        let r = digits[..30]
            .iter()
            .chain(b"00")
            .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
        let check = 98 - r;
        digits[30] = b'0' + (check / 10) as u8;
        digits[31] = b'0' + (check % 10) as u8;
        // Only ASCII digits were written; the check digits are right.
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| Eid::parse(s).ok())
            .unwrap_or_else(|| unreachable!())
    }

    /// The index of the device with this EID, if it is one of ours.
    pub fn index_of(&self, eid: &Eid) -> Option<u32> {
        let n = Self::number_in(eid)?;
        (n < self.devices && Self::eid(n) == *eid).then_some(n)
    }

    /// The device number an EID of ours would carry (its digits 22..30),
    /// without checking that the rest is ours: [`Population::index_of`]
    /// checks it against [`Population::eid`].
    pub fn number_in(eid: &Eid) -> Option<u32> {
        // Digits 22..30 are bytes 11..15 of the card encoding.
        eid.to_bcd()[11..15].iter().try_fold(0u32, |n, b| {
            let (hi, lo) = (u32::from(b >> 4), u32::from(b & 0x0F));
            (hi < 10 && lo < 10).then_some(n * 100 + hi * 10 + lo)
        })
    }

    /// Device `n`.
    pub fn device(&self, n: u32) -> DeviceSeed {
        let mut rng =
            StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(n));
        let area = pick(&self.area_cdf, rng.random()) as AreaIx;
        let vendor = pick(&self.vendor_cdf, rng.random()) as u8;
        let mix = pick(&self.mix_cdf, rng.random()) as u8;
        let m = &self.mixes[usize::from(mix)];
        let iccid = |k: u32| {
            Iccid::from_body(&format!("8944000{k}{n:010}")).unwrap_or_else(|_| unreachable!())
        };
        let mut profiles = vec![(iccid(1), m.primary)];
        if let (Some(f), false) = (m.fallback, m.consumer) {
            profiles.push((iccid(2), f));
        }
        let arrival_ms = if self.arrival_cdf.is_empty() {
            0
        } else {
            let u: f64 = rng.random();
            let i = self.arrival_cdf.partition_point(|(_, c)| *c < u).max(1);
            let (t1, c1) = self.arrival_cdf[i.min(self.arrival_cdf.len() - 1)];
            let (t0, c0) = self.arrival_cdf[i - 1];
            let f = if c1 > c0 { (u - c0) / (c1 - c0) } else { 0.0 };
            (t0 + ((t1 - t0) as f64 * f) as i64).max(1)
        };
        DeviceSeed {
            eid: Self::eid(n),
            area,
            vendor,
            mix,
            arrival_ms,
            profiles,
            consumer: m.consumer,
        }
    }

    /// Whether any mix is of consumer phones (the run needs an SM-DP+).
    pub fn has_consumers(&self) -> bool {
        self.mixes.iter().any(|m| m.consumer)
    }

    /// The fleet group of a mix.
    pub fn group(&self, mix: u8) -> &str {
        &self.mixes[usize::from(mix)].group
    }

    /// A vendor.
    pub fn vendor(&self, v: u8) -> &Vendor {
        &self.vendors[usize::from(v)]
    }

    /// Time to notice a network change, at most.
    pub fn detect_within_ms(&self) -> i64 {
        self.detect_within_ms
    }

    /// Attempts before giving up (0: never).
    pub fn give_up_after(&self) -> u32 {
        self.give_up_after
    }

    /// Delay before retry number `attempt + 1`: `retry_base · 2^(attempt-1)`
    /// capped at `retry_max`, drawn from its upper half.
    pub fn retry_delay_ms(&self, attempt: u16, rng: &mut StdRng) -> i64 {
        let exp = u32::from(attempt.saturating_sub(1)).min(20);
        let nominal = self
            .retry_base_ms
            .saturating_mul(1 << exp)
            .min(self.retry_max_ms)
            .max(2);
        nominal / 2 + rng.random_range(0..=nominal / 2)
    }

    /// Delay from a consumer arriving to scanning the QR code.
    pub fn scan_delay_ms(&self, rng: &mut StdRng) -> i64 {
        rng.random_range(1000..=self.scan_within_ms.max(1000))
    }

    /// Delay from a package being queued to the IPA fetching it.
    pub fn poll_delay_ms(&self, rng: &mut StdRng) -> i64 {
        rng.random_range(1000..=self.poll_within_ms.max(1000))
    }
}

/// Cumulative shares of weights.
fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let w: Vec<f64> = weights.collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect()
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|c| *c <= u).min(cdf.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eids_are_the_prefix_zeros_index_and_check_digits() {
        for n in [
            0, 1, 9, 10, 97, 12_345, 999_999, 1_000_000, 49_999_999, 99_999_999,
        ] {
            let expected = Eid::from_body(&format!("{EID_PREFIX}00000000000000{n:08}")).unwrap();
            assert_eq!(Population::eid(n), expected, "device {n}");
        }
    }

    #[test]
    fn index_of_finds_only_the_run_s_devices() {
        let scenario = Scenario::builtin("outage").unwrap();
        let fleet = FleetConfig::from_toml(&scenario.fleet_toml()).unwrap();
        let network = Network::new(&scenario);
        let population = Population::new(&scenario, &fleet, &network, 1000, 1).unwrap();
        for n in [0, 1, 500, 999] {
            assert_eq!(population.index_of(&Population::eid(n)), Some(n));
        }
        // Past the run's devices, another EUM's range, a wrong middle.
        assert_eq!(population.index_of(&Population::eid(1000)), None);
        let other = Eid::from_body("890490320000010000000000000001").unwrap();
        assert_eq!(population.index_of(&other), None);
        let foreign = Eid::from_body("890440000000000000000000000001").unwrap();
        assert_eq!(population.index_of(&foreign), None);
    }
}
