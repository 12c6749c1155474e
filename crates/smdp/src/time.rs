//! Time as the SM-DP+ logic sees it: passed in, never read from the system.
//!
//! [`Timestamp`] (milliseconds since the Unix epoch) and the [`Clock`]s that
//! drivers read it from live in `ferrosim-ids`.

pub use ferrosim_ids::{Clock, ManualClock, SystemClock, Timestamp};

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
    }
}
