//! How an IPA behaves: where profile downloads go, how often it polls, how
//! it backs off when the eIM cannot be reached.

use std::time::Duration;

use ferrosim_ids::Eid;
use ferrosim_lpa::RetryPolicy;
use ferrosim_lpa::es10::types::DeviceInfo;

/// Where the ES9+ steps of a profile download (and the eUICC's
/// notifications) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownloadPath {
    /// Straight to the SM-DP+ named by the activation code (the IPA has
    /// its own Internet access).
    #[default]
    Direct,
    /// Through the eIM, which relays them to the SM-DP+ (indirect profile
    /// download of SGP.32: the device only reaches its eIM).
    ViaEim,
}

/// Waits after failed sessions: `first`, doubled after each further
/// failure up to `max`, each drawn uniformly from the upper half of that
/// value (jitter, so a fleet that lost its eIM does not come back at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 30 s, doubling up to 1 h.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait before the next session after `failures` failed ones in a
    /// row (at least 1), before jitter.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(self.first.min(self.max))
    }
}

/// The IPA's settings.
#[derive(Debug, Clone)]
pub struct IpaConfig {
    /// The eUICC's EID, when known; otherwise it is read from the eUICC
    /// (ES10c GetEID) in the first session and kept.
    pub eid: Option<Eid>,
    /// MCC/MNC of the last registered PLMN (3 bytes, 3GPP TS 24.008), sent
    /// with every GetEimPackage.
    pub r_plmn: Option<[u8; 3]>,
    /// Where downloads and notifications go.
    pub download_path: DownloadPath,
    /// The device as described to the SM-DP+ in a download.
    pub device_info: DeviceInfo,
    /// How notifications and installation results are retried.
    pub notification_retry: RetryPolicy,
    /// Whether the eUICC's pending notifications are delivered at the end
    /// of each session.
    pub deliver_notifications: bool,
    /// Time between sessions when all goes well (with ±10 % jitter).
    pub poll_interval: Duration,
    /// Waits after failed sessions.
    pub backoff: Backoff,
    /// Most eIM packages run in one session (the rest wait for the next).
    pub max_items_per_session: usize,
    /// Sessions a result is offered to the eIM without being acknowledged
    /// before the IPA gives it up (reported, logged).
    pub max_result_attempts: u32,
}

impl Default for IpaConfig {
    /// Direct downloads, polling once a day (the default of hosted IoT
    /// fleets), two notification attempts.
    fn default() -> Self {
        Self {
            eid: None,
            r_plmn: None,
            download_path: DownloadPath::Direct,
            device_info: DeviceInfo::default(),
            notification_retry: RetryPolicy {
                attempts: 2,
                first_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(2),
            },
            deliver_notifications: true,
            poll_interval: Duration::from_secs(24 * 3600),
            backoff: Backoff::default(),
            max_items_per_session: 64,
            max_result_attempts: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let b = Backoff {
            first: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (0..6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(waits, [10, 10, 20, 40, 60, 60]);
        assert_eq!(b.ceiling(u32::MAX).as_secs(), 60);
    }
}
