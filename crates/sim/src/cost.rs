//! The lower bound a run's signature work sets: its elliptic-curve
//! operations (counted as they happen) times their cost, spread over the
//! threads the run used.
//!
//! The costs are measured on this machine with the same backend (aws-lc
//! through `ferrosim-crypto`) **before the run**, in the fresh process:
//! [`EcCosts::measure_on`] times each operation on as many threads at once
//! as will run the shards, in interleaved batches (a sign batch, a verify
//! batch, a key-generation batch, an agreement batch, then again), and
//! keeps each operation's fastest batch on any thread. Each batch is timed
//! on the thread's CPU clock (where the platform has one), so that time
//! the machine gave other work does not count: the bound is CPU time of EC
//! work, and the reading stays steady on a busy machine (caches and cores
//! shared with other work can still slow it). Measured at the end
//! of a 1,000,000-device run instead, a signature read 21.7-29.0 µs
//! against 15.4-15.9 µs in a fresh process (probably the C heap's state
//! after gigabytes of churn: aws-lc allocates from it), which made the
//! bound higher and the run's ratio to it flatter. The measurement is not part of the run's
//! wall time.

use std::time::Instant;

use ferrosim_crypto::{KeySource, SoftwareKey};
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

/// Batches of each operation per thread; the fastest counts.
const BATCHES: u32 = 9;

/// Operations per batch: sign, verify, key generation, key agreement
/// (each batch some 5-10 ms on a 2020s core).
const PER_BATCH: [u32; 4] = [400, 150, 300, 150];

impl EcCosts {
    /// Measures each operation on this thread alone
    /// ([`EcCosts::measure_on`] with one thread).
    pub fn measure() -> Self {
        Self::measure_on(1)
    }

    /// Measures each operation on `threads` threads at once (this one and
    /// `threads - 1` more; the shards of a run use that many): each thread
    /// runs [`BATCHES`] rounds of one batch per operation, and each
    /// operation's cost is its fastest batch on any thread (the least
    /// disturbed by other work on the machine). Zero costs if the backend
    /// fails (the bound is then 0 and its ratio 0: unknown).
    pub fn measure_on(threads: usize) -> Self {
        let threads = threads.max(1);
        let per_thread: Vec<Self> = std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|_| scope.spawn(measure_here)).collect();
            let mut all = vec![measure_here()];
            all.extend(others.into_iter().filter_map(|h| h.join().ok()));
            all
        });
        per_thread
            .into_iter()
            .filter(|c| c.sign_us > 0.0)
            .reduce(|a, b| Self {
                sign_us: a.sign_us.min(b.sign_us),
                verify_us: a.verify_us.min(b.verify_us),
                keygen_us: a.keygen_us.min(b.keygen_us),
                agreement_us: a.agreement_us.min(b.agreement_us),
            })
            .unwrap_or_default()
    }
}

/// This thread's CPU time (s): a batch timed on it does not count the time
/// other work on the machine had the core.
#[cfg(unix)]
fn thread_cpu_s() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
}

/// No per-thread CPU clock here: batches are timed on the wall clock.
#[cfg(not(unix))]
fn thread_cpu_s() -> Option<f64> {
    None
}

/// One thread's fastest batch of each operation ([`EcCosts::measure_on`]),
/// or zero costs if the backend fails.
fn measure_here() -> EcCosts {
    let Ok(key) = SoftwareKey::generate() else {
        return EcCosts::default();
    };
    let Ok(verifying) = key.verifying_key() else {
        return EcCosts::default();
    };
    let message = [0x5Au8; 300];
    let Ok(signature) = key.sign_raw(&message) else {
        return EcCosts::default();
    };
    let Ok(ours) = ferrosim_crypto::ecka::OneTimeKeyPair::from_scalar(&[0x11; 32]) else {
        return EcCosts::default();
    };
    let Ok(peer) = ferrosim_crypto::ecka::OneTimeKeyPair::generate() else {
        return EcCosts::default();
    };
    let batch = |n: u32, f: &dyn Fn()| {
        let cpu = thread_cpu_s();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let took = match (cpu, thread_cpu_s()) {
            (Some(a), Some(b)) => b - a,
            _ => t.elapsed().as_secs_f64(),
        };
        took * 1e6 / f64::from(n)
    };
    let mut best = [f64::INFINITY; 4];
    for _ in 0..BATCHES {
        let costs = [
            batch(PER_BATCH[0], &|| {
                let _ = std::hint::black_box(key.sign_raw(&message));
            }),
            batch(PER_BATCH[1], &|| {
                let _ = std::hint::black_box(verifying.verify_raw(&message, &signature));
            }),
            batch(PER_BATCH[2], &|| {
                let _ = std::hint::black_box(SoftwareKey::generate());
            }),
            batch(PER_BATCH[3], &|| {
                let _ = std::hint::black_box(ours.agree(peer.public_sec1()));
            }),
        ];
        for (b, c) in best.iter_mut().zip(costs) {
            *b = b.min(c);
        }
    }
    EcCosts {
        sign_us: best[0],
        verify_us: best[1],
        keygen_us: best[2],
        agreement_us: best[3],
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
            let c = EcCosts::measure_on(threads);
            println!("{threads} threads: {c:?}");
            for us in [c.sign_us, c.verify_us, c.keygen_us, c.agreement_us] {
                assert!(us.is_finite() && us > 0.0, "{c:?}");
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
