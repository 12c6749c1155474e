//! Time as protocol logic sees it: a [`Timestamp`] passed in, read from a
//! [`Clock`] by whoever drives the logic.
//!
//! Sans-IO cores take `now: Timestamp` as an argument. Drivers read it from
//! a clock: [`SystemClock`] in production, [`ManualClock`] in tests and in
//! the simulator, where time moves only when the driver says so.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{IdError, echo};

/// A point in time in milliseconds since the Unix epoch (UTC).
///
/// Stored as a plain integer in every backend (and in serde), so SQLite,
/// PostgreSQL and JSON compare and index it the same way. `Display` and
/// `FromStr` use RFC 3339 text.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The current system time. Only drivers call this (through
    /// [`SystemClock`]); logic receives the time as an argument.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// The time `ms` milliseconds after the epoch (before it if negative).
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_ms(d)))
    }

    /// This time minus `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_ms(d)))
    }

    /// How long after `earlier` this time is; zero if it is not later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let ms = self.0.saturating_sub(earlier.0);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// A `SystemTime`, truncated to whole milliseconds.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(duration_ms(after)),
            Err(before) => Self(duration_ms(before.duration()).saturating_neg()),
        }
    }

    /// As a `SystemTime`, for certificate validity checks (the epoch if the
    /// platform cannot represent it).
    pub fn to_system_time(self) -> SystemTime {
        let d = Duration::from_millis(self.0.unsigned_abs());
        let t = if self.0 >= 0 {
            UNIX_EPOCH.checked_add(d)
        } else {
            UNIX_EPOCH.checked_sub(d)
        };
        t.unwrap_or(UNIX_EPOCH)
    }

    /// RFC 3339 text in UTC with millisecond precision (as ES2+ timestamps).
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Parses RFC 3339 text with any offset (`2026-01-31T12:00:00Z`,
    /// `2026-01-31T13:00:00.250+01:00`); sub-millisecond digits are dropped.
    pub fn parse_rfc3339(text: &str) -> Result<Self, IdError> {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| IdError::Timestamp { value: echo(text) })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// [`Timestamp::from_system_time`]: lets APIs that take `impl Into<Timestamp>`
/// accept a `SystemTime` too.
impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self::from_system_time(t)
    }
}

impl FromStr for Timestamp {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse_rfc3339(s)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A source of the current time, for drivers of sans-IO logic.
///
/// Implemented by [`SystemClock`] and [`ManualClock`], and by references,
/// `Box`es and `Arc`s of clocks, so a driver can hold `Arc<dyn Clock>`.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to: for tests and virtual-time
/// simulation.
///
/// Clones share one time (cloning is cheap: one `Arc`), so a test or a
/// simulator's event loop can hand clones to every component it drives and
/// move them all at once with [`set`](ManualClock::set) or
/// [`advance`](ManualClock::advance).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock to `t` (backwards too, to test what logic does then).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `d` (saturating) and returns the new time.
    pub fn advance(&self, d: Duration) -> Timestamp {
        let step = duration_ms(d);
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(step);
            match self
                .0
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Timestamp(next),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_478_400_123).to_rfc3339(),
            "2026-11-24T00:00:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
        for t in [0, 1_795_478_400_123, 951_782_400_000, -1] {
            assert_eq!(
                Timestamp(t).to_string().parse::<Timestamp>().unwrap(),
                Timestamp(t)
            );
        }
        assert_eq!(
            "2026-11-24T01:00:00.123456+01:00"
                .parse::<Timestamp>()
                .unwrap(),
            Timestamp(1_795_478_400_123)
        );
        for bad in ["", "2026-11-24", "yesterday", "2026-13-01T00:00:00Z"] {
            assert_eq!(
                bad.parse::<Timestamp>(),
                Err(IdError::Timestamp { value: bad.into() })
            );
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(1_000);
        assert_eq!(t.plus(Duration::from_millis(500)), Timestamp(1_500));
        assert_eq!(t.minus(Duration::from_secs(2)), Timestamp(-1_000));
        assert_eq!(
            Timestamp(i64::MAX - 1).plus(Duration::MAX),
            Timestamp(i64::MAX)
        );
        assert_eq!(
            Timestamp(i64::MIN + 1).minus(Duration::MAX),
            Timestamp(i64::MIN)
        );
        assert_eq!(Timestamp(1_500).since(t), Duration::from_millis(500));
        assert_eq!(t.since(Timestamp(1_500)), Duration::ZERO);
        assert_eq!(Timestamp::from_millis(7).millis(), 7);
    }

    #[test]
    fn system_time_conversions() {
        for ms in [0i64, 1_795_478_400_123, -86_400_000] {
            let t = Timestamp(ms);
            assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        }
        assert_eq!(
            Timestamp(1_500).to_system_time(),
            UNIX_EPOCH + Duration::from_millis(1_500)
        );
        assert_eq!(serde_json::to_string(&Timestamp(42)).unwrap(), "42");
        assert_eq!(
            serde_json::from_str::<Timestamp>("-42").unwrap(),
            Timestamp(-42)
        );
        assert!(serde_json::from_str::<Timestamp>("\"x\"").is_err());
    }

    #[test]
    fn manual_clock_is_shared_and_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(10_000));
        let seen_by_component = clock.clone();
        assert_eq!(seen_by_component.now(), Timestamp(10_000));
        assert_eq!(clock.advance(Duration::from_secs(5)), Timestamp(15_000));
        assert_eq!(seen_by_component.now(), Timestamp(15_000));
        clock.set(Timestamp(3));
        assert_eq!(seen_by_component.now(), Timestamp(3));
        clock.set(Timestamp(i64::MAX - 10));
        assert_eq!(clock.advance(Duration::from_secs(1)), Timestamp(i64::MAX));
        assert_eq!(ManualClock::default().now(), Timestamp::EPOCH);
    }

    #[test]
    fn clocks_work_behind_references_and_trait_objects() {
        fn read(clock: &impl Clock) -> Timestamp {
            clock.now()
        }
        let manual = ManualClock::new(Timestamp(5));
        let shared: Arc<dyn Clock> = Arc::new(manual.clone());
        let boxed: Box<dyn Clock> = Box::new(manual.clone());
        manual.advance(Duration::from_millis(1));
        assert_eq!(read(&shared), Timestamp(6));
        assert_eq!(read(&boxed), Timestamp(6));
        assert_eq!(read(&&manual), Timestamp(6));
        // The system clock is after 2020 and does not run backwards between two reads.
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(a > Timestamp(1_577_836_800_000));
        assert!(b >= a);
    }

    #[test]
    fn manual_clock_advances_from_several_threads() {
        let clock = ManualClock::new(Timestamp(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = clock.clone();
                s.spawn(move || {
                    for _ in 0..250 {
                        c.advance(Duration::from_millis(1));
                    }
                });
            }
        });
        assert_eq!(clock.now(), Timestamp(1_000));
    }
}
