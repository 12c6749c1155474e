//! The decisions of access control, sans-IO: per client key, a token bucket
//! (rate and burst) and a count of failures that locks the key out for a
//! while. Time comes in as Unix milliseconds; nothing here waits or reads a
//! clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Limits of one kind of client key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccessPolicy {
    /// Requests per second a key may sustain.
    pub rate_per_sec: f64,
    /// Requests a key may make at once after being idle.
    pub burst: u32,
    /// Failures (refused authentications, wrong matching ids or
    /// confirmation codes...) within `failure_window` that lock the key out.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub failure_window: Duration,
    /// How long a key stays locked out.
    pub lockout: Duration,
    /// Requests per second one device (by EID) may sustain: a device makes
    /// few calls (a download is four ES9+ calls, an IPA polls every few
    /// minutes), so its bucket is smaller than an address's.
    pub eid_rate_per_sec: f64,
    /// Requests one device may make at once after being idle.
    pub eid_burst: u32,
    /// Failures of one device (refusals after its eUICC proved its EID)
    /// within `failure_window` that lock it out.
    pub eid_max_failures: u32,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            rate_per_sec: 100.0,
            burst: 500,
            max_failures: 100,
            failure_window: Duration::from_secs(600),
            lockout: Duration::from_secs(900),
            eid_rate_per_sec: 20.0,
            eid_burst: 200,
            eid_max_failures: 20,
        }
    }
}

impl AccessPolicy {
    /// The token bucket (rate per second, burst) of `key`'s kind.
    pub fn bucket(&self, key: &ClientKey) -> (f64, u32) {
        match key {
            ClientKey::Eid(_) => (self.eid_rate_per_sec, self.eid_burst),
            ClientKey::Address(_) | ClientKey::Token(_) => (self.rate_per_sec, self.burst),
        }
    }

    /// The failures within the window that lock `key` out.
    pub fn max_failures(&self, key: &ClientKey) -> u32 {
        match key {
            ClientKey::Eid(_) => self.eid_max_failures,
            ClientKey::Address(_) | ClientKey::Token(_) => self.max_failures,
        }
    }
}

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The client's IP address.
    Address(IpAddr),
    /// A bearer token (its SHA-256's first 16 bytes: the token itself is
    /// never kept).
    Token([u8; 16]),
    /// A device by EID (32 digits): the EID an ESipa message names, or the
    /// one in the eUICC certificate of an ES9+ authenticateClient. Only
    /// failures after the eUICC proved its EID (its signature verified)
    /// count towards an EID's lockout, so nobody can lock out a device by
    /// naming it.
    Eid(String),
}

impl ClientKey {
    /// `address`, `token` or `eid` (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Address(_) => "address",
            Self::Token(_) => "token",
            Self::Eid(_) => "eid",
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Too many requests: retry after this many milliseconds.
    Limited {
        /// Milliseconds until a request would be allowed.
        retry_after_ms: i64,
    },
    /// Locked out after too many failures, until this many milliseconds
    /// from now.
    Locked {
        /// Milliseconds until the lockout ends.
        retry_after_ms: i64,
    },
}

#[derive(Debug, Clone)]
struct State {
    tokens: f64,
    refilled_at: i64,
    failures: u32,
    window_start: i64,
    locked_until: i64,
}

/// Per-key state of every key seen recently, bounded in size.
#[derive(Debug)]
pub struct AccessControl {
    policy: AccessPolicy,
    keys: HashMap<ClientKey, State>,
    max_keys: usize,
}

impl AccessControl {
    /// Control under `policy`, tracking at most `max_keys` keys (beyond,
    /// idle keys are forgotten first; a key that cannot be tracked is let
    /// through unlimited rather than refused).
    pub fn new(policy: AccessPolicy, max_keys: usize) -> Self {
        Self {
            policy,
            keys: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    /// Keys locked out at `now`.
    pub fn locked(&self, now: i64) -> usize {
        self.keys.values().filter(|s| s.locked_until > now).count()
    }

    /// Decides on a request of `key` at `now` (taking one token if allowed).
    pub fn check(&mut self, key: &ClientKey, now: i64) -> Verdict {
        let (rate, burst) = self.policy.bucket(key);
        let Some(s) = self.state(key, now) else {
            return Verdict::Allow;
        };
        if s.locked_until > now {
            return Verdict::Locked {
                retry_after_ms: s.locked_until - now,
            };
        }
        let elapsed = (now - s.refilled_at).max(0) as f64 / 1000.0;
        s.tokens = (s.tokens + elapsed * rate).min(f64::from(burst));
        s.refilled_at = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Verdict::Allow
        } else {
            let wait = (1.0 - s.tokens) / rate.max(f64::MIN_POSITIVE);
            Verdict::Limited {
                retry_after_ms: (wait * 1000.0).ceil() as i64,
            }
        }
    }

    /// Records a failure of `key` at `now`; `true` when it locked the key.
    pub fn failed(&mut self, key: &ClientKey, now: i64) -> bool {
        let policy = self.policy;
        let max_failures = policy.max_failures(key);
        let Some(s) = self.state(key, now) else {
            return false;
        };
        let window = i64::try_from(policy.failure_window.as_millis()).unwrap_or(i64::MAX);
        if now - s.window_start > window {
            s.window_start = now;
            s.failures = 0;
        }
        s.failures += 1;
        if s.failures >= max_failures && s.locked_until <= now {
            let lockout = i64::try_from(policy.lockout.as_millis()).unwrap_or(i64::MAX);
            s.locked_until = now.saturating_add(lockout);
            s.failures = 0;
            s.window_start = now;
            return true;
        }
        false
    }

    /// The state of `key`, created if there is room.
    fn state(&mut self, key: &ClientKey, now: i64) -> Option<&mut State> {
        if !self.keys.contains_key(key) {
            if self.keys.len() >= self.max_keys {
                self.forget_idle(now);
            }
            if self.keys.len() >= self.max_keys {
                return None;
            }
            let (_, burst) = self.policy.bucket(key);
            self.keys.insert(
                key.clone(),
                State {
                    tokens: f64::from(burst),
                    refilled_at: now,
                    failures: 0,
                    window_start: now,
                    locked_until: 0,
                },
            );
        }
        self.keys.get_mut(key)
    }

    /// Forgets keys that are in no state worth keeping: not locked, no
    /// failures in the window, bucket full again.
    pub fn forget_idle(&mut self, now: i64) {
        let p = self.policy;
        let window = i64::try_from(p.failure_window.as_millis()).unwrap_or(i64::MAX);
        self.keys.retain(|key, s| {
            let (rate, burst) = p.bucket(key);
            let refilled = s.tokens + (now - s.refilled_at).max(0) as f64 / 1000.0 * rate;
            s.locked_until > now
                || (s.failures > 0 && now - s.window_start <= window)
                || refilled < f64::from(burst)
        });
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy {
            rate_per_sec: 10.0,
            burst: 5,
            max_failures: 3,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            eid_rate_per_sec: 1.0,
            eid_burst: 2,
            eid_max_failures: 2,
        }
    }

    #[test]
    fn bursts_then_the_rate() {
        let mut c = AccessControl::new(policy(), 100);
        let k = ClientKey::Address("192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4])));
        for _ in 0..5 {
            assert_eq!(c.check(&k, 0), Verdict::Allow);
        }
        assert_eq!(
            c.check(&k, 0),
            Verdict::Limited {
                retry_after_ms: 100
            }
        );
        assert_eq!(c.check(&k, 100), Verdict::Allow);
        // Another key is not affected.
        let other = ClientKey::Eid("89049032000000000000000000000163".into());
        assert_eq!(c.check(&other, 0), Verdict::Allow);
    }

    #[test]
    fn a_device_has_its_own_smaller_bucket() {
        let mut c = AccessControl::new(policy(), 100);
        let eid = ClientKey::Eid("89049032000000000000000000000163".into());
        assert_eq!(c.check(&eid, 0), Verdict::Allow);
        assert_eq!(c.check(&eid, 0), Verdict::Allow);
        assert_eq!(
            c.check(&eid, 0),
            Verdict::Limited {
                retry_after_ms: 1_000
            }
        );
        assert_eq!(c.check(&eid, 1_000), Verdict::Allow);
        // Failures lock a device out after its own maximum.
        assert!(!c.failed(&eid, 2_000));
        assert!(c.failed(&eid, 2_001));
        assert!(matches!(c.check(&eid, 3_000), Verdict::Locked { .. }));
    }

    #[test]
    fn failures_lock_out_for_a_while() {
        let mut c = AccessControl::new(policy(), 100);
        let k = ClientKey::Token([1; 16]);
        assert!(!c.failed(&k, 0));
        assert!(!c.failed(&k, 10));
        assert!(c.failed(&k, 20));
        assert_eq!(
            c.check(&k, 1_000),
            Verdict::Locked {
                retry_after_ms: 299_020
            }
        );
        assert_eq!(c.locked(1_000), 1);
        assert_eq!(c.check(&k, 300_020), Verdict::Allow);
        // Failures spread beyond the window do not add up.
        let k2 = ClientKey::Token([2; 16]);
        for t in 0..10 {
            assert!(!c.failed(&k2, t * 61_000));
        }
    }

    #[test]
    fn the_number_of_keys_is_bounded() {
        let mut c = AccessControl::new(policy(), 10);
        for i in 0..100u32 {
            let k = ClientKey::Address(IpAddr::from(i.to_be_bytes()));
            c.check(&k, i64::from(i) * 1_000);
        }
        assert!(c.tracked() <= 10);
        // Locked keys are kept even when the table is full.
        let locked = ClientKey::Token([9; 16]);
        let mut c = AccessControl::new(policy(), 2);
        for t in 0..3 {
            c.failed(&locked, t);
        }
        for i in 0..50u32 {
            c.check(&ClientKey::Address(IpAddr::from(i.to_be_bytes())), 10_000);
        }
        assert!(matches!(c.check(&locked, 10_000), Verdict::Locked { .. }));
    }
}
