//! What the P-256 operations of a profile download cost on this machine:
//! the one timing behind every elliptic-curve lower bound ferrosim prints
//! (`ferrosim bench --in-memory`, `ferrosim bench --eim`, the simulator).
//!
//! [`measure_on`] times the four operations a download performs, with the
//! backend the download uses (aws-lc through this crate):
//!
//! - an ECDSA signature (raw `r||s`) over 300 bytes,
//! - a verification of one with a parsed key ([`VerifyingKey`]),
//! - a one-time key pair from a 32-byte scalar
//!   ([`OneTimeKeyPair::from_scalar`], as the SM-DP+ and the eUICC make
//!   theirs),
//! - an ECDH agreement with a one-time key.
//!
//! It runs on `threads` threads at once (a benchmark keeps that many cores
//! busy, and an operation timed beside an idle core can read faster than
//! it runs beside a busy one). Each thread runs [`ROUNDS`] rounds of one
//! batch per operation, interleaved (a sign batch, a verify batch, a
//! key-pair batch, an agreement batch, then again), so that a slow spell
//! of the machine hits all four alike, and times each batch on its own CPU
//! clock (where the platform has one), so that time the machine gave other
//! work does not count. Every batch comes back ([`Batches`]): callers read
//! each operation's [`Batches::median`] (what it usually cost: a central
//! estimate, as criterion reports one) and its [`Batches::fastest`] (the
//! batch least disturbed by the rest of the machine; on a VM whose speed
//! moves it reads 10-25 % below what the operations usually cost).

use std::time::{Duration, Instant};

use crate::ecdsa::VerifyingKey;
use crate::ecka::OneTimeKeyPair;
use crate::error::{Error, Result};
use crate::key::{KeySource, SoftwareKey};

/// One value per P-256 operation of a download.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PerOperation<T> {
    /// ECDSA signature.
    pub sign: T,
    /// ECDSA verification with a parsed key.
    pub verify: T,
    /// One-time key pair from a scalar.
    pub key_pair: T,
    /// ECDH agreement with a one-time key.
    pub agreement: T,
}

impl<T> PerOperation<T> {
    /// Applies `f` to each operation's value.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerOperation<U> {
        PerOperation {
            sign: f(&self.sign),
            verify: f(&self.verify),
            key_pair: f(&self.key_pair),
            agreement: f(&self.agreement),
        }
    }
}

/// Rounds of batches per thread.
pub const ROUNDS: u32 = 9;

/// Operations per batch (each batch some 3-10 ms on a 2020s core: long
/// against the clock's resolution, short against the VM's slow spells).
pub const PER_BATCH: PerOperation<u32> = PerOperation {
    sign: 200,
    verify: 80,
    key_pair: 200,
    agreement: 80,
};

/// Every batch of one or more timings: for each operation, the cost of
/// each batch on each thread, in µs per operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batches(PerOperation<Vec<f64>>);

impl Batches {
    /// Each operation's batches (µs per operation), in no particular order.
    pub fn all(&self) -> &PerOperation<Vec<f64>> {
        &self.0
    }

    /// How many batches each operation has (every timing times all four
    /// alike).
    pub fn per_operation(&self) -> usize {
        self.0.sign.len()
    }

    /// Adds the batches of another timing (say one before and one after a
    /// run, so that one slow spell does not decide the reading alone).
    pub fn extend(&mut self, other: Self) {
        self.0.sign.extend(other.0.sign);
        self.0.verify.extend(other.0.verify);
        self.0.key_pair.extend(other.0.key_pair);
        self.0.agreement.extend(other.0.agreement);
    }

    /// Each operation's median batch (µs): what the operation usually cost
    /// in the timing. 0 for an operation without batches.
    pub fn median(&self) -> PerOperation<f64> {
        self.0.map(|b| {
            let mut sorted = b.clone();
            sorted.sort_by(f64::total_cmp);
            match sorted.len() {
                0 => 0.0,
                n if n % 2 == 1 => sorted[n / 2],
                n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
            }
        })
    }

    /// Each operation's fastest batch (µs): the one least disturbed by the
    /// rest of the machine. 0 for an operation without batches.
    pub fn fastest(&self) -> PerOperation<f64> {
        self.0
            .map(|b| b.iter().copied().reduce(f64::min).unwrap_or(0.0))
    }
}

/// Times the operations on `threads` threads at once (this one and
/// `threads - 1` more; at least one), as the [module](self) describes.
/// Takes about `threads x` 0.15 s of CPU. Fails only if the backend fails
/// (or a timing thread panics).
pub fn measure_on(threads: usize) -> Result<Batches> {
    on_threads(threads, ROUNDS, PER_BATCH)
}

/// Operations per batch of a [`sample_on`]: a fifth of [`PER_BATCH`], so
/// that a round takes some 4 ms of a thread.
pub const PER_SAMPLE_BATCH: PerOperation<u32> = PerOperation {
    sign: PER_BATCH.sign / 5,
    verify: PER_BATCH.verify / 5,
    key_pair: PER_BATCH.key_pair / 5,
    agreement: PER_BATCH.agreement / 5,
};

/// One round of smaller batches ([`PER_SAMPLE_BATCH`]) on `threads`
/// threads at once, timed as [`measure_on`] times its rounds: the sample a
/// long run takes now and then between its own steps (while they wait),
/// so that the costs its bound counts follow the machine's speed through
/// the run rather than one moment before it. This VM has spells of seconds
/// to minutes in which every operation costs 25-40 % more, and a timing
/// of a fraction of a second read a run's costs 10-25 % off either way.
pub fn sample_on(threads: usize) -> Result<Batches> {
    on_threads(threads, 1, PER_SAMPLE_BATCH)
}

/// `rounds` rounds of batches of `per_batch` on `threads` threads at once
/// (this one and `threads - 1` more; at least one), all batches together.
fn on_threads(threads: usize, rounds: u32, per_batch: PerOperation<u32>) -> Result<Batches> {
    let threads = threads.max(1);
    let per_thread: Vec<Result<Batches>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|_| scope.spawn(move || thread_batches(rounds, per_batch)))
            .collect();
        let mut all = vec![thread_batches(rounds, per_batch)];
        all.extend(others.into_iter().map(|h| {
            h.join()
                .unwrap_or(Err(Error::Backend("an EC timing thread (it panicked)")))
        }));
        all
    });
    let mut batches = Batches::default();
    for mine in per_thread {
        batches.extend(mine?);
    }
    Ok(batches)
}

/// This thread's `rounds` interleaved rounds of batches of `per_batch`.
fn thread_batches(rounds: u32, per_batch: PerOperation<u32>) -> Result<Batches> {
    let key = SoftwareKey::generate()?;
    let verifying: VerifyingKey = key.verifying_key()?;
    let message = [0x5Au8; 300];
    let signature = key.sign_raw(&message)?;
    let peer = OneTimeKeyPair::generate()?;
    let ours = OneTimeKeyPair::from_scalar(&[0x11; 32])?;
    let mut all = Batches::default();
    for _ in 0..rounds {
        all.0.sign.push(batch(per_batch.sign, || {
            std::hint::black_box(key.sign_raw(std::hint::black_box(&message))).is_ok()
        })?);
        all.0.verify.push(batch(per_batch.verify, || {
            std::hint::black_box(verifying.verify_raw(std::hint::black_box(&message), &signature))
                .is_ok()
        })?);
        all.0.key_pair.push(batch(per_batch.key_pair, || {
            std::hint::black_box(OneTimeKeyPair::from_scalar(std::hint::black_box(
                &[0x22; 32],
            )))
            .is_ok()
        })?);
        all.0.agreement.push(batch(per_batch.agreement, || {
            std::hint::black_box(ours.agree(std::hint::black_box(peer.public_sec1()))).is_ok()
        })?);
    }
    Ok(all)
}

/// `n` runs of `op`, timed on this thread's CPU clock (the wall clock
/// where there is none): µs per run. An operation that fails fails the
/// timing rather than timing the failure.
fn batch(n: u32, mut op: impl FnMut() -> bool) -> Result<f64> {
    let cpu = thread_cpu();
    let wall = Instant::now();
    for _ in 0..n {
        if !op() {
            return Err(Error::Backend("an operation of the EC timing"));
        }
    }
    let took = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    };
    Ok(took.as_secs_f64() * 1e6 / f64::from(n.max(1)))
}

/// This thread's CPU time.
#[cfg(unix)]
fn thread_cpu() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

/// No per-thread CPU clock here.
#[cfg(not(unix))]
fn thread_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_times_every_operation_in_every_round() {
        for threads in [1, 2] {
            let b = measure_on(threads).unwrap();
            let expected = threads * ROUNDS as usize;
            let all = b.all();
            for batches in [&all.sign, &all.verify, &all.key_pair, &all.agreement] {
                assert_eq!(batches.len(), expected);
                assert!(
                    batches.iter().all(|us| us.is_finite() && *us > 0.0),
                    "{b:?}"
                );
            }
            let (median, fastest) = (b.median(), b.fastest());
            for (m, f) in [
                (median.sign, fastest.sign),
                (median.verify, fastest.verify),
                (median.key_pair, fastest.key_pair),
                (median.agreement, fastest.agreement),
            ] {
                assert!(f > 0.0 && m >= f, "median {median:?} fastest {fastest:?}");
            }
        }
    }

    #[test]
    fn a_sample_times_one_batch_of_each_operation_on_each_thread() {
        let b = sample_on(2).unwrap();
        let all = b.all();
        for batches in [&all.sign, &all.verify, &all.key_pair, &all.agreement] {
            assert_eq!(batches.len(), 2);
            assert!(
                batches.iter().all(|us| us.is_finite() && *us > 0.0),
                "{b:?}"
            );
        }
    }

    #[test]
    fn median_and_fastest_of_known_batches() {
        let mut b = Batches(PerOperation {
            sign: vec![3.0, 1.0, 2.0],
            verify: vec![4.0, 8.0],
            key_pair: vec![],
            agreement: vec![5.0],
        });
        b.extend(Batches(PerOperation {
            sign: vec![10.0, 0.5],
            ..PerOperation::default()
        }));
        assert_eq!(
            b.median(),
            PerOperation {
                sign: 2.0,
                verify: 6.0,
                key_pair: 0.0,
                agreement: 5.0
            }
        );
        assert_eq!(
            b.fastest(),
            PerOperation {
                sign: 0.5,
                verify: 4.0,
                key_pair: 0.0,
                agreement: 5.0
            }
        );
    }
}
