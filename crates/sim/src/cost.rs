//! The lower bound a run's signature work sets: its elliptic-curve
//! operations (counted as they happen) times their cost, spread over the
//! threads the run used.
//!
//! The costs are measured on this machine with the same backend (aws-lc
//! through `ferrosim-crypto`) by [`ferrosim_crypto::ec_cost`], the timing
//! every EC bound of ferrosim uses: on as many threads at once as run the
//! shards, batches of each operation, each timed on the thread's CPU clock
//! (where the platform has one), so that time the machine gave other work
//! does not count. A run is timed twice over:
//!
//! - **before the run**, in the fresh process ([`ec_cost::measure_on`]:
//!   interleaved rounds of one batch per operation), and
//! - **during it**: every couple of seconds of wall time, between two
//!   windows while the shards and the control plane wait, one round of
//!   smaller batches on as many threads ([`ec_cost::sample_on`], some 4 ms).
//!
//! This VM's speed moves by 25-40 % over spells of seconds to minutes (a
//! signature 15-18 µs in a fast phase, 22-30 µs in a slow one), so a
//! timing of a fraction of a second before a 70-second run read the
//! run's EC cost 10-25 % off in either direction (two 1M-device runs back
//! to back: bounds of 56.8 and 44.7 s). [`MeasuredCosts::of`] counts each
//! operation at its median batch over both timings (a central estimate of
//! what it cost while the run ran, as criterion reports one) and keeps the
//! fastest batch (a second bound printed beside it) and the timing before
//! the run alone, so that a report shows all three. The rounds during the
//! run are part of its wall time. A key generation is timed as a one-time
//! key pair from a scalar (what a download makes); a device's identity
//! key, generated once at setup, costs the same base-point multiplication
//! and pair check.

use ferrosim_crypto::ec_cost;
use serde::Serialize;

/// Measured cost of one operation (µs).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct EcCosts {
    /// ECDSA P-256 signature.
    pub sign_us: f64,
    /// ECDSA P-256 verification (key parsed once).
    pub verify_us: f64,
    /// P-256 key generation.
    pub keygen_us: f64,
    /// ECDH key agreement with a one-time key (consumer downloads).
    pub agreement_us: f64,
}

/// The four costs as a report prints them: "sign / verify / key generation
/// / agreement" in µs, one decimal each.
impl std::fmt::Display for EcCosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} / {:.1} / {:.1} / {:.1}",
            self.sign_us, self.verify_us, self.keygen_us, self.agreement_us
        )
    }
}

impl From<ec_cost::PerOperation<f64>> for EcCosts {
    fn from(us: ec_cost::PerOperation<f64>) -> Self {
        Self {
            sign_us: us.sign,
            verify_us: us.verify,
            keygen_us: us.key_pair,
            agreement_us: us.agreement,
        }
    }
}

/// How many batches of each operation a run's costs are taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EcBatchCounts {
    /// Timed before the run (rounds x threads).
    pub before_run: usize,
    /// Timed during the run (rounds x threads).
    pub during_run: usize,
}

impl EcBatchCounts {
    /// All of them: the batches each operation's median is taken over.
    pub fn total(&self) -> usize {
        self.before_run + self.during_run
    }
}

/// A run's readings of the costs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeasuredCosts {
    /// Each operation's median batch over the timings before and during
    /// the run: the costs the lower bound counts.
    pub median: EcCosts,
    /// Each operation's fastest batch of the same timings: the least
    /// disturbed reading, below what the operations usually cost.
    pub fastest: EcCosts,
    /// Each operation's median batch of the timing before the run alone.
    pub before_run: EcCosts,
    /// The batches behind these readings.
    pub batches: EcBatchCounts,
}

/// Times each operation on `threads` threads at once (this one and
/// `threads - 1` more; the shards of a run use that many) with
/// [`ec_cost::measure_on`], before a run. No batches if the backend fails
/// (the bound is then 0 and its ratio 0: unknown).
pub fn measure_before_run(threads: usize) -> ec_cost::Batches {
    ec_cost::measure_on(threads).unwrap_or_default()
}

impl MeasuredCosts {
    /// The readings of the timing `before` the run and the rounds taken
    /// `during` it.
    pub fn of(before: &ec_cost::Batches, during: &ec_cost::Batches) -> Self {
        let mut all = before.clone();
        all.extend(during.clone());
        Self {
            median: all.median().into(),
            fastest: all.fastest().into(),
            before_run: before.median().into(),
            batches: EcBatchCounts {
                before_run: before.per_operation(),
                during_run: during.per_operation(),
            },
        }
    }
}

/// The lower bound and how close a run came to it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LowerBound {
    /// CPU seconds of EC work.
    pub cpu_s: f64,
    /// Threads the run used.
    pub threads: usize,
    /// `cpu_s / threads`: no run on these threads can be faster.
    pub seconds: f64,
    /// Wall time / `seconds`.
    pub ratio: f64,
}

impl LowerBound {
    /// From the counts (signs, verifies, key generations, key agreements).
    pub fn of(counts: (u64, u64, u64, u64), costs: EcCosts, threads: usize, wall_s: f64) -> Self {
        let cpu_s = (counts.0 as f64 * costs.sign_us
            + counts.1 as f64 * costs.verify_us
            + counts.2 as f64 * costs.keygen_us
            + counts.3 as f64 * costs.agreement_us)
            / 1e6;
        let threads = threads.max(1);
        let seconds = cpu_s / threads as f64;
        Self {
            cpu_s,
            threads,
            seconds,
            ratio: if seconds > 0.0 { wall_s / seconds } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cost_is_measured_on_every_thread_count() {
        for threads in [1, 2] {
            let m = MeasuredCosts::of(&measure_before_run(threads), &ec_cost::Batches::default());
            println!("{threads} threads: {m:?}");
            let (c, f) = (m.median, m.fastest);
            for (median, fastest) in [
                (c.sign_us, f.sign_us),
                (c.verify_us, f.verify_us),
                (c.keygen_us, f.keygen_us),
                (c.agreement_us, f.agreement_us),
            ] {
                assert!(fastest.is_finite() && fastest > 0.0, "{m:?}");
                assert!(median.is_finite() && median >= fastest, "{m:?}");
            }
        }
    }

    #[test]
    fn the_rounds_during_a_run_count_beside_the_timing_before_it() {
        let before = ec_cost::measure_on(1).unwrap();
        let mut during = ec_cost::Batches::default();
        for _ in 0..3 {
            during.extend(ec_cost::sample_on(1).unwrap());
        }
        let m = MeasuredCosts::of(&before, &during);
        assert_eq!(
            m.batches,
            EcBatchCounts {
                before_run: ec_cost::ROUNDS as usize,
                during_run: 3
            }
        );
        assert_eq!(m.before_run, EcCosts::from(before.median()));
        let mut all = before.clone();
        all.extend(during);
        assert_eq!(m.median, EcCosts::from(all.median()));
        assert_eq!(m.fastest, EcCosts::from(all.fastest()));
        assert!(m.fastest.sign_us > 0.0 && m.median.sign_us >= m.fastest.sign_us);
    }

    #[test]
    fn costs_print_as_four_figures_of_one_decimal() {
        let c = EcCosts {
            sign_us: 24.119,
            verify_us: 75.85,
            keygen_us: 25.0,
            agreement_us: 58.36,
        };
        assert_eq!(c.to_string(), "24.1 / 75.8 / 25.0 / 58.4");
    }

    #[test]
    fn the_bound_spreads_the_work_over_the_threads() {
        let costs = EcCosts {
            sign_us: 10.0,
            verify_us: 20.0,
            keygen_us: 5.0,
            agreement_us: 40.0,
        };
        let b = LowerBound::of((100_000, 50_000, 20_000, 0), costs, 2, 3.0);
        assert!((b.cpu_s - 2.1).abs() < 1e-9, "{b:?}");
        assert!((b.seconds - 1.05).abs() < 1e-9, "{b:?}");
        assert!((b.ratio - 3.0 / 1.05).abs() < 1e-9, "{b:?}");
    }
}
