//! The heap one virtual eUICC takes, measured rather than estimated.
//!
//! A simulation holds up to a million devices, so what one device costs
//! matters: the target is at most 4 KB of heap per device with two
//! installed profiles, not counting what devices share ([`SharedIdentity`]:
//! the EUM and CI certificates, the trust store, the verified SM-DP+
//! certificates).
//!
//! [`measure_by_drop`] measures exactly that: it drops a set of devices and
//! counts the heap bytes their drop gives back, reading the allocator's
//! count of live bytes before and after. Whatever the devices share with
//! something that outlives them (their [`SharedIdentity`], held by the
//! caller) is not given back and so not counted; everything a device owns
//! is (its state and profiles, its own certificate and key, its channels
//! and session, and its inline size in the `Vec` that held it).
//!
//! Counting needs a counting global allocator, which needs `unsafe` code
//! this crate does not have: the binary or test that measures installs one
//! (for example `cap::Cap`) and passes a function reading its count. The
//! count covers what Rust allocates; memory the crypto backend (aws-lc)
//! allocates with C `malloc` for the eUICC's private key is outside it.
//!
//! [`SharedIdentity`]: crate::SharedIdentity

use crate::VirtualEuicc;

/// What [`measure_by_drop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapFootprint {
    /// Devices measured.
    pub devices: usize,
    /// Profiles installed on them, in all.
    pub profiles: usize,
    /// Notifications stored on them, in all.
    pub notifications: usize,
    /// Heap bytes their drop gave back, in all.
    pub bytes: usize,
}

impl HeapFootprint {
    /// Heap bytes per device (rounded down; 0 without devices).
    pub fn bytes_per_device(&self) -> usize {
        self.bytes.checked_div(self.devices).unwrap_or(0)
    }
}

impl std::fmt::Display for HeapFootprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes of heap per device ({} devices, {} profiles, {} notifications stored, \
             shared identity parts not counted)",
            self.bytes_per_device(),
            self.devices,
            self.profiles,
            self.notifications
        )
    }
}

/// Drops `devices` and returns the heap their drop gave back, reading the
/// live byte count with `live_bytes` (see the module documentation). No
/// other thread should allocate meanwhile: the count is process-wide.
pub fn measure_by_drop(
    devices: Vec<VirtualEuicc>,
    live_bytes: impl Fn() -> usize,
) -> HeapFootprint {
    let count = devices.len();
    let profiles = devices.iter().map(|d| d.state().profiles.len()).sum();
    let notifications = devices.iter().map(|d| d.state().notifications.len()).sum();
    let before = live_bytes();
    drop(devices);
    let after = live_bytes();
    HeapFootprint {
        devices: count,
        profiles,
        notifications,
        bytes: before.saturating_sub(after),
    }
}
