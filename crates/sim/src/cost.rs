//! The lower bound a run's signature work sets: its elliptic-curve
//! operations (counted as they happen) times their cost, spread over the
//! threads the run used.
//!
//! The costs are measured on this machine with the same backend (aws-lc
//! through `ferrosim-crypto`) **before the run**, in the fresh process, by
//! [`ferrosim_crypto::ec_cost`], the timing every EC bound of ferrosim
//! uses: on as many threads at once as will run the shards, interleaved
//! rounds of one batch per operation, each batch timed on the thread's CPU
//! clock (where the platform has one), so that time the machine gave other
//! work does not count. [`MeasuredCosts::measure_on`] keeps both readings
//! of its batches: each operation's median batch, which the bound counts
//! (a central estimate of what the operation costs, as criterion reports
//! one), and its fastest batch, a second bound printed beside it (on a VM
//! whose speed moves it reads 10-25 % below what the operations usually
//! cost). A key generation is timed as a one-time key pair from a scalar
//! (what a download makes); a device's identity key, generated once at
//! setup, costs the same base-point multiplication and pair check.
//!
//! Measured at the end of a 1,000,000-device run instead, a signature read
//! 21.7-29.0 µs against 15.4-15.9 µs in a fresh process (probably the C
//! heap's state after gigabytes of churn: aws-lc allocates from it), which
//! made the bound higher and the run's ratio to it flatter. The
//! measurement is not part of the run's wall time.

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

/// One timing's two readings of the costs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeasuredCosts {
    /// Each operation's median batch: the costs the lower bound counts.
    pub median: EcCosts,
    /// Each operation's fastest batch: the least disturbed reading, below
    /// what the operations usually cost.
    pub fastest: EcCosts,
}

impl MeasuredCosts {
    /// Times each operation on `threads` threads at once (this one and
    /// `threads - 1` more; the shards of a run use that many) with
    /// [`ec_cost::measure_on`]. Zero costs if the backend fails (the bound
    /// is then 0 and its ratio 0: unknown).
    pub fn measure_on(threads: usize) -> Self {
        match ec_cost::measure_on(threads) {
            Ok(batches) => Self {
                median: batches.median().into(),
                fastest: batches.fastest().into(),
            },
            Err(_) => Self::default(),
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
            let m = MeasuredCosts::measure_on(threads);
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
