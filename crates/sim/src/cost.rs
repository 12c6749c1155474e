//! The lower bound a run's signature work sets: its elliptic-curve
//! operations (counted as they happen) times their cost, measured on this
//! machine at the end of the run with the same backend (aws-lc through
//! `ferrosim-crypto`), spread over the threads the run used.

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

impl EcCosts {
    /// Measures each operation: the fastest of five batches (the least
    /// disturbed by other work on the machine).
    pub fn measure() -> Self {
        let Ok(key) = SoftwareKey::generate() else {
            return Self::default();
        };
        let Ok(verifying) = key.verifying_key() else {
            return Self::default();
        };
        let message = [0x5Au8; 300];
        let Ok(signature) = key.sign_raw(&message) else {
            return Self::default();
        };
        let best = |n: u32, f: &dyn Fn()| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..n {
                        f();
                    }
                    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
                })
                .fold(f64::INFINITY, f64::min)
        };
        let Ok(ours) = ferrosim_crypto::ecka::OneTimeKeyPair::from_scalar(&[0x11; 32]) else {
            return Self::default();
        };
        let Ok(peer) = ferrosim_crypto::ecka::OneTimeKeyPair::generate() else {
            return Self::default();
        };
        Self {
            agreement_us: best(100, &|| {
                let _ = std::hint::black_box(ours.agree(peer.public_sec1()));
            }),
            sign_us: best(200, &|| {
                let _ = std::hint::black_box(key.sign_raw(&message));
            }),
            verify_us: best(100, &|| {
                let _ = std::hint::black_box(verifying.verify_raw(&message, &signature));
            }),
            keygen_us: best(50, &|| {
                let _ = std::hint::black_box(SoftwareKey::generate());
            }),
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
