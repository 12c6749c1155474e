//! Rate limits in virtual time: token buckets and jittered exponential
//! backoff. Time comes in as an argument; nothing reads a clock.

use ferrosim_ids::Timestamp;
use rand::{CryptoRng, RngExt};
use serde::{Deserialize, Serialize};

use crate::duration::Span;

/// One token, in the bucket's units: a bucket refilling at `r` tokens per
/// minute gains exactly `r` units per millisecond, so no rounding ever
/// loses or invents a token.
const UNIT: u64 = 60_000;

/// A token bucket refilled in virtual time: at most `burst` tokens at once,
/// `rate_per_minute` more per minute. A burst of 1 spaces events evenly: then
/// no window of one minute sees more than `rate_per_minute` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Tokens per minute; 0 means unlimited.
    pub rate_per_minute: u32,
    /// Capacity in tokens (at least 1).
    pub burst: u32,
    level: u64,
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate_per_minute: u32, burst: u32, now: Timestamp) -> Self {
        let burst = burst.max(1);
        Self {
            rate_per_minute,
            burst,
            level: u64::from(burst) * UNIT,
            at: now,
        }
    }

    /// Whether the bucket never limits.
    pub fn is_unlimited(&self) -> bool {
        self.rate_per_minute == 0
    }

    fn capacity(&self) -> u64 {
        u64::from(self.burst) * UNIT
    }

    fn refill(&mut self, now: Timestamp) {
        if now > self.at {
            let elapsed = u64::try_from(now.millis().saturating_sub(self.at.millis())).unwrap_or(0);
            let gained = elapsed.saturating_mul(u64::from(self.rate_per_minute));
            self.level = self.level.saturating_add(gained).min(self.capacity());
            self.at = now;
        }
    }

    /// Changes the rate from `now` on (tokens earned so far are kept).
    pub fn set_rate(&mut self, rate_per_minute: u32, now: Timestamp) {
        self.refill(now);
        self.rate_per_minute = rate_per_minute;
    }

    /// Changes rate and burst from `now` on (tokens earned so far are kept,
    /// up to the new burst).
    pub fn reshape(&mut self, rate_per_minute: u32, burst: u32, now: Timestamp) {
        self.refill(now);
        self.rate_per_minute = rate_per_minute;
        self.burst = burst.max(1);
        self.level = self.level.min(self.capacity());
    }

    /// Takes one token, or says when one will be there.
    pub fn try_take(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        if self.is_unlimited() {
            return Ok(());
        }
        self.refill(now);
        if self.level >= UNIT {
            self.level -= UNIT;
            return Ok(());
        }
        let missing = UNIT - self.level;
        let wait = missing.div_ceil(u64::from(self.rate_per_minute));
        let base = now.max(self.at);
        Err(Timestamp(
            base.millis()
                .saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
        ))
    }

    /// Whole tokens available at `now` (without taking any).
    pub fn available(&self, now: Timestamp) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        let mut b = *self;
        b.refill(now);
        b.level / UNIT
    }
}

/// The delay before retry number `attempt` (1 for the first retry):
/// `base * 2^(attempt-1)` capped at `max`, drawn uniformly from its upper
/// half ("equal jitter"), so retries of many devices spread out but never
/// come sooner than half the nominal delay.
pub fn backoff<R: CryptoRng + ?Sized>(attempt: u32, base: Span, max: Span, rng: &mut R) -> Span {
    let exp = attempt.saturating_sub(1).min(40);
    let nominal = base
        .millis()
        .saturating_mul(1u64 << exp)
        .min(max.millis())
        .max(1);
    let half = nominal / 2;
    Span(half + rng.random_range(0..=nominal - half))
}

/// A uniformly random delay in `[0, max]`.
pub fn jitter<R: CryptoRng + ?Sized>(max: Span, rng: &mut R) -> Span {
    if max.millis() == 0 {
        Span(0)
    } else {
        Span(rng.random_range(0..=max.millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn bucket_spaces_events_at_its_rate() {
        let t0 = Timestamp(1_000_000);
        let mut b = TokenBucket::new(60, 1, t0); // one per second
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Err(Timestamp(1_001_000)));
        assert_eq!(b.try_take(Timestamp(1_000_999)), Err(Timestamp(1_001_000)));
        assert_eq!(b.try_take(Timestamp(1_001_000)), Ok(()));
        // Idle for an hour: still only one token (burst 1).
        let later = Timestamp(1_001_000 + 3_600_000);
        assert_eq!(b.available(later), 1);
        assert_eq!(b.try_take(later), Ok(()));
        assert!(b.try_take(later).is_err());
        // Time going backwards never adds tokens.
        assert!(b.try_take(Timestamp(0)).is_err());
    }

    #[test]
    fn bucket_never_exceeds_rate_in_any_minute() {
        let mut b = TokenBucket::new(7, 1, Timestamp(0));
        let mut taken = Vec::new();
        for ms in (0..600_000).step_by(250) {
            if b.try_take(Timestamp(ms)).is_ok() {
                taken.push(ms);
            }
        }
        for (i, &start) in taken.iter().enumerate() {
            let in_minute = taken[i..]
                .iter()
                .take_while(|&&t| t < start + 60_000)
                .count();
            assert!(in_minute <= 7, "{in_minute} in the minute from {start}");
        }
        assert!(taken.len() >= 69, "{}", taken.len());
        let mut unlimited = TokenBucket::new(0, 1, Timestamp(0));
        for _ in 0..1000 {
            assert_eq!(unlimited.try_take(Timestamp(0)), Ok(()));
        }
    }

    #[test]
    fn a_second_of_burst_keeps_any_minute_within_the_limit() {
        // Limit 600 a minute, polled once a second: burst 10, rate 590.
        let mut b = TokenBucket::new(1, 1, Timestamp(0));
        b.reshape(590, 10, Timestamp(0));
        let mut taken = Vec::new();
        for s in 0..600 {
            while b.try_take(Timestamp(s * 1000)).is_ok() {
                taken.push(s * 1000);
            }
        }
        for (i, &start) in taken.iter().enumerate() {
            let n = taken[i..]
                .iter()
                .take_while(|&&t| t < start + 60_000)
                .count();
            assert!(n <= 600, "{n} in the minute from {start}");
        }
        assert!(taken.len() >= 5_600, "{}", taken.len());
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Span::secs(5);
        let max = Span::mins(1);
        for attempt in 1..20 {
            let nominal = (5_000u64 << (attempt - 1).min(40)).min(60_000);
            let d = backoff(attempt, base, max, &mut rng);
            assert!(
                d.millis() >= nominal / 2 && d.millis() <= nominal,
                "{attempt}: {d}"
            );
        }
        let draws: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| backoff(3, base, max, &mut rng).millis())
            .collect();
        assert!(draws.len() > 10, "jitter spreads retries");
        assert!(backoff(u32::MAX, base, max, &mut rng).millis() <= 60_000);
        assert_eq!(jitter(Span(0), &mut rng), Span(0));
    }
}
