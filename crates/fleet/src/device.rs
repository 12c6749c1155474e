//! Devices: what they are (EID, vendor, model, firmware, capabilities read
//! through the IPA), what the fleet wants of them ([`Desired`]) and what is
//! known of them ([`Observed`]), in a compact, fixed-size form.
//!
//! A million devices must fit in a simulator's memory next to everything
//! else, so [`DeviceState`] holds no strings and no heap: names are interned
//! ids, ICCIDs packed BCD, times whole seconds ([`Secs`]). Its size is
//! checked by a test and printed by the bench.

use std::fmt;

use ferrosim_ids::{Eid, Iccid, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::{ApnId, GroupId, ProfileTypeId, RegionId};

/// A time in whole seconds since the Unix epoch, 0 meaning "never". Per
/// device state keeps these (4 bytes) instead of millisecond timestamps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Secs(pub u32);

impl Secs {
    /// Never.
    pub const NEVER: Secs = Secs(0);

    /// `t` rounded down to the second, clamped to 1970-01-01T00:00:01 ..
    /// 2106 (so a real time is never "never").
    pub fn of(t: Timestamp) -> Self {
        Self(u32::try_from((t.millis() / 1000).clamp(1, i64::from(u32::MAX))).unwrap_or(u32::MAX))
    }

    /// Whether this is "never".
    pub fn is_never(self) -> bool {
        self.0 == 0
    }

    /// As a timestamp.
    pub fn ts(self) -> Timestamp {
        Timestamp(i64::from(self.0) * 1000)
    }

    /// Whole seconds from `self` to `now` (0 if `now` is earlier or `self`
    /// is never).
    pub fn age(self, now: Timestamp) -> u64 {
        if self.is_never() {
            return u64::MAX;
        }
        u64::try_from((now.millis() / 1000).saturating_sub(i64::from(self.0))).unwrap_or(0)
    }
}

/// A vendor, model or firmware name in the fleet's name table (see
/// [`crate::Names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NameId(pub u32);

/// An ICCID packed as its 10-byte SGP.22 BCD coding (validated on the way
/// in; converted back to [`Iccid`] for actions).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackedIccid([u8; 10]);

impl PackedIccid {
    /// Packs an ICCID.
    pub fn new(iccid: &Iccid) -> Self {
        Self(iccid.to_bcd())
    }

    /// The ICCID (the coding was validated when packed).
    pub fn iccid(&self) -> Option<Iccid> {
        Iccid::from_bcd(&self.0).ok()
    }

    /// The telemetry key of this profile.
    pub fn profile_key(&self) -> Option<ferrosim_telemetry::ProfileKey> {
        self.iccid()
            .and_then(|i| ferrosim_telemetry::ProfileKey::from_digits(i.as_str()))
    }
}

impl fmt::Debug for PackedIccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.iccid() {
            Some(i) => write!(f, "{i}"),
            None => write!(f, "{:02x?}", self.0),
        }
    }
}

impl Serialize for PackedIccid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.iccid() {
            Some(i) => i.serialize(s),
            None => Err(serde::ser::Error::custom("packed ICCID does not decode")),
        }
    }
}

impl<'de> Deserialize<'de> for PackedIccid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Iccid::deserialize(d).map(|i| Self::new(&i))
    }
}

/// A dotted version (`1.2.0`, firmware `4.10.2`), compared numerically.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version(pub [u16; 3]);

impl Version {
    /// Parses one to three dot-separated numbers (`2`, `1.2`, `4.10.2`), the
    /// missing ones being 0; anything after a `-` or `+` (a build or
    /// pre-release tag) is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let core = text
            .split(['-', '+'])
            .next()?
            .trim_start_matches(['v', 'V']);
        let mut out = [0u16; 3];
        for (n, part) in core.split('.').enumerate() {
            if n == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            out[n] = part.parse().ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0[0], self.0[1], self.0[2])
    }
}

/// `ipaFeatures` bits of SGP.32 IpaCapabilities.
pub mod ipa_features {
    /// directRspServerCommunication (0).
    pub const DIRECT_RSP_SERVER: u8 = 1 << 0;
    /// indirectRspServerCommunication (1).
    pub const INDIRECT_RSP_SERVER: u8 = 1 << 1;
    /// eimDownloadDataHandling (2).
    pub const EIM_DOWNLOAD_DATA_HANDLING: u8 = 1 << 2;
    /// eimCtxParams1Generation (3).
    pub const EIM_CTX_PARAMS1_GENERATION: u8 = 1 << 3;
    /// eimProfileMetadataVerification (4).
    pub const EIM_PROFILE_METADATA_VERIFICATION: u8 = 1 << 4;
    /// minimizeEsipaBytes (5).
    pub const MINIMIZE_ESIPA_BYTES: u8 = 1 << 5;
}

/// What a device can do, as read through its IPA (EUICCInfo2
/// `iotSpecificInfo`, IpaCapabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Highest SGP.32 version the eUICC supports (`iotVersion`).
    pub sgp32_version: Version,
    /// `fallbackSupported`: the eUICC has the Fallback Mechanism (v1.2).
    #[serde(default)]
    pub fallback_supported: bool,
    /// The IPA honours the enable PSMO's rollback flag.
    #[serde(default = "yes")]
    pub rollback_supported: bool,
    /// `ipaFeatures` bits ([`ipa_features`]).
    #[serde(default)]
    pub ipa_features: u8,
    /// `ipaSupportedProtocols` bits (retrieve/inject over HTTPS/CoAPS).
    #[serde(default)]
    pub ipa_protocols: u8,
}

fn yes() -> bool {
    true
}

/// Which of its desired profiles a device should be using.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The primary profile.
    #[default]
    Primary,
    /// The staged fallback, after a failover.
    Fallback,
    /// The third-carrier fallback, after the fallback failed too.
    Spare,
}

/// What the fleet wants a device to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Desired {
    /// Profile used normally (carrier A).
    pub primary: ProfileTypeId,
    /// Fallback staged with the fallback attribute (carrier B).
    pub fallback: Option<ProfileTypeId>,
    /// After a switch, a further fallback staged on a third carrier.
    pub spare: Option<ProfileTypeId>,
    /// Which one is in use.
    pub mode: Mode,
    /// APN for the primary, overriding its profile type's (an APN rollout).
    pub primary_apn: Option<ApnId>,
    /// Failover rule, overriding the group's (a rule rollout).
    pub rule: Option<crate::catalog::RuleId>,
}

impl Desired {
    /// The profile type the device should be using now.
    pub fn active(&self) -> ProfileTypeId {
        match self.mode {
            Mode::Primary => self.primary,
            Mode::Fallback => self.fallback.unwrap_or(self.primary),
            Mode::Spare => self.spare.or(self.fallback).unwrap_or(self.primary),
        }
    }

    /// Whether `t` is one of the profiles the device should hold.
    pub fn holds(&self, t: ProfileTypeId) -> bool {
        self.primary == t || self.fallback == Some(t) || self.spare == Some(t)
    }

    /// The profile that should carry the fallback attribute: the fallback
    /// while on the primary, the spare once the fallback is in use.
    pub fn fallback_target(&self) -> Option<ProfileTypeId> {
        match self.mode {
            Mode::Primary => self.fallback,
            Mode::Fallback => self.spare,
            Mode::Spare => None,
        }
    }
}

/// Flags of an observed profile.
pub mod flags {
    /// Enabled (in use).
    pub const ENABLED: u8 = 1 << 0;
    /// Carries the SGP.32 fallback attribute.
    pub const FALLBACK_ATTR: u8 = 1 << 1;
    /// Proven working: a registration and a data-path check succeeded
    /// while it was enabled.
    pub const WORKS: u8 = 1 << 2;
    /// Enabled by the device's ExecuteFallbackMechanism (leave with
    /// ReturnFromFallback).
    pub const VIA_FALLBACK: u8 = 1 << 3;
    /// Registered at least once while enabled (data path not yet proven).
    pub const REGISTERED: u8 = 1 << 4;
    /// Revoked by the operator at its SM-DP+: never used again, replaced by
    /// a fresh profile of its type, deleted once that one is in place.
    pub const REVOKED: u8 = 1 << 5;
    /// The eUICC refused the fallback attribute on it
    /// (setFallbackAttribute `fallbackNotAllowed`: its metadata does not
    /// carry SGP.32's `fallbackAllowed`). The reconciler stops asking, the
    /// profile stays staged without the attribute, and the device view
    /// says so; a listing that shows another profile holding the attribute
    /// clears it (that, not the metadata, may have been the refusal).
    pub const FALLBACK_REFUSED: u8 = 1 << 6;
}

/// A profile installed on a device, as last known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObservedProfile {
    /// Its ICCID.
    pub iccid: PackedIccid,
    /// The profile type it was ordered as (`None`: not ordered by the fleet).
    pub profile_type: Option<ProfileTypeId>,
    /// [`flags`].
    pub flags: u8,
}

impl ObservedProfile {
    /// Whether a flag is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Most profiles tracked per device (eUICCs of IoT devices hold a few).
pub const MAX_PROFILES: usize = 4;

/// What is known of a device's eUICC and agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Observed {
    /// Installed profiles (first `count` entries are valid).
    pub profiles: [Option<ObservedProfile>; MAX_PROFILES],
    /// The APN setting last delivered to the device agent, with the
    /// profile type it was delivered for.
    pub apn_delivered: Option<(ProfileTypeId, ApnId)>,
}

impl Observed {
    /// Installed profiles.
    pub fn iter(&self) -> impl Iterator<Item = &ObservedProfile> {
        self.profiles.iter().flatten()
    }

    /// The enabled profile.
    pub fn enabled(&self) -> Option<&ObservedProfile> {
        self.iter().find(|p| p.has(flags::ENABLED))
    }

    /// The installed profile of this type (a revoked one does not count).
    pub fn of_type(&self, t: ProfileTypeId) -> Option<&ObservedProfile> {
        self.iter()
            .find(|p| p.profile_type == Some(t) && !p.has(flags::REVOKED))
    }

    /// The profile with this ICCID.
    pub fn by_iccid(&self, iccid: PackedIccid) -> Option<&ObservedProfile> {
        self.iter().find(|p| p.iccid == iccid)
    }

    /// The profile with this ICCID, to change.
    pub fn by_iccid_mut(&mut self, iccid: PackedIccid) -> Option<&mut ObservedProfile> {
        self.profiles
            .iter_mut()
            .flatten()
            .find(|p| p.iccid == iccid)
    }

    /// Adds (or finds) a profile; `false` when all slots are taken.
    pub fn insert(&mut self, p: ObservedProfile) -> bool {
        if let Some(existing) = self.by_iccid_mut(p.iccid) {
            if existing.profile_type.is_none() {
                existing.profile_type = p.profile_type;
            }
            return true;
        }
        match self.profiles.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(p);
                true
            }
            None => false,
        }
    }

    /// Removes a profile.
    pub fn remove(&mut self, iccid: PackedIccid) {
        for slot in &mut self.profiles {
            if slot.is_some_and(|p| p.iccid == iccid) {
                *slot = None;
            }
        }
    }

    /// Marks `iccid` enabled and every other profile disabled.
    pub fn set_enabled(&mut self, iccid: PackedIccid, via_fallback: bool) {
        for p in self.profiles.iter_mut().flatten() {
            if p.iccid == iccid {
                if !p.has(flags::ENABLED) {
                    p.flags &= !flags::REGISTERED;
                }
                p.flags |= flags::ENABLED;
                if via_fallback {
                    p.flags |= flags::VIA_FALLBACK;
                } else {
                    p.flags &= !flags::VIA_FALLBACK;
                }
            } else {
                p.flags &= !(flags::ENABLED | flags::VIA_FALLBACK | flags::REGISTERED);
            }
        }
    }

    /// Number of installed profiles.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether none is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Connectivity of a device's current profile, as far as the failover
/// rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Health {
    /// Registration failures counted in the current window.
    pub reg_failures: u8,
    /// When the first failure of the current window happened.
    pub reg_window_start: Secs,
    /// Last successful data-path check (or the enable, as a start).
    pub last_data_ok: Secs,
    /// The last data-path check failed.
    pub data_failing: bool,
    /// Data-path checks above the latency bound in a row.
    pub latency_streak: u8,
    /// The last latency reported (ms, at most 65,535).
    #[serde(deserialize_with = "saturating_u16")]
    pub last_latency_ms: u16,
    /// Since when it has been registered only on networks that are not its
    /// current profile's carrier's (roaming; never while it registers at
    /// home, or has not said where).
    #[serde(default)]
    pub roaming_since: Secs,
    /// The network of its last accepted registration, when it said.
    #[serde(default)]
    pub registered_plmn: PackedPlmn,
}

/// A number stored as `u16`, read from any unsigned number (records
/// written when it was wider), saturating.
fn saturating_u16<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = u64::deserialize(d)?;
    Ok(u16::try_from(n).unwrap_or(u16::MAX))
}

/// A network (MCC-MNC) packed in the three BCD bytes of 3GPP TS 24.008
/// (10.5.1.13), or none (all `F`s). Serialised as an optional
/// [`crate::catalog::MccMnc`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackedPlmn([u8; 3]);

impl Default for PackedPlmn {
    fn default() -> Self {
        Self::NONE
    }
}

impl PackedPlmn {
    /// No network.
    pub const NONE: PackedPlmn = PackedPlmn([0xFF; 3]);

    /// Packs a network (none if its codes have more than three digits).
    pub fn new(n: crate::catalog::MccMnc) -> Self {
        if n.mcc > 999 || n.mnc > 999 || (!n.three_digit_mnc && n.mnc > 99) {
            return Self::NONE;
        }
        let d = |v: u16, i: u32| (v / 10u16.pow(i) % 10) as u8;
        let (m1, m2, m3) = (d(n.mcc, 2), d(n.mcc, 1), d(n.mcc, 0));
        let (n1, n2, n3) = if n.three_digit_mnc {
            (d(n.mnc, 2), d(n.mnc, 1), d(n.mnc, 0))
        } else {
            (d(n.mnc, 1), d(n.mnc, 0), 0xF)
        };
        Self([m2 << 4 | m1, n3 << 4 | m3, n2 << 4 | n1])
    }

    /// The network, if any.
    pub fn get(self) -> Option<crate::catalog::MccMnc> {
        if self == Self::NONE {
            return None;
        }
        let [a, b, c] = self.0;
        let mcc = u16::from(a & 0xF) * 100 + u16::from(a >> 4) * 10 + u16::from(b & 0xF);
        let three = b >> 4 != 0xF;
        let mnc = if three {
            u16::from(c & 0xF) * 100 + u16::from(c >> 4) * 10 + u16::from(b >> 4)
        } else {
            u16::from(c & 0xF) * 10 + u16::from(c >> 4)
        };
        Some(crate::catalog::MccMnc {
            mcc,
            mnc,
            three_digit_mnc: three,
        })
    }
}

impl fmt::Debug for PackedPlmn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("none"),
        }
    }
}

impl Serialize for PackedPlmn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PackedPlmn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<crate::catalog::MccMnc>::deserialize(d)?.map_or(Self::NONE, Self::new))
    }
}

/// The last switches of a device (ring of [`crate::rules::MAX_SWITCHES_PER_HOUR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SwitchLog {
    /// Switch times, newest at `next - 1`.
    pub at: [Secs; crate::rules::MAX_SWITCHES_PER_HOUR as usize],
    /// Next slot to write.
    pub next: u8,
}

impl SwitchLog {
    /// Records a switch.
    pub fn push(&mut self, t: Secs) {
        let n = self.at.len();
        self.at[usize::from(self.next) % n] = t;
        self.next = u8::try_from((usize::from(self.next) + 1) % n).unwrap_or(0);
    }

    /// Switches in the hour before `now` (`now - 3600 s < t <= now`).
    pub fn in_last_hour(&self, now: Timestamp) -> u8 {
        let n = self
            .at
            .iter()
            .filter(|t| !t.is_never() && t.age(now) < 3600)
            .count();
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// The latest switch.
    pub fn last(&self) -> Secs {
        self.at.iter().copied().max().unwrap_or_default()
    }
}

/// A device's place in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RolloutMark {
    /// The rollout.
    pub rollout: u32,
    /// Its wave (0-based).
    pub wave: u8,
    /// Where the device is in it.
    pub state: MarkState,
}

/// A device's state within a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkState {
    /// The change is applied; its wave is soaking (replaced profiles are
    /// kept for a rollback).
    Applied,
    /// Its wave passed its gate.
    Passed,
    /// The change was rolled back.
    RolledBack,
    /// Skipped: not compatible with the change.
    Skipped,
}

/// The action a device waits for, and its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Work {
    /// The action in flight, if any.
    pub in_flight: Option<crate::action::ActionId>,
    /// Failed attempts of the current step.
    pub attempts: u8,
    /// No new step before this time (retry backoff).
    pub not_before: Secs,
    /// The device's state matches its desired state.
    pub converged: bool,
    /// Waiting in a switch queue.
    pub queued: bool,
    /// The eUICC's profile list must be read again (a result was lost or
    /// contradicted what was known).
    pub resync: bool,
    /// The activation (failover, rollout step) its current work belongs
    /// to, for telemetry (0: none).
    pub activation: u64,
    /// Its capabilities must be read through its IPA (EUICCInfo2,
    /// IpaCapabilities) before anything else is done for it.
    #[serde(default)]
    pub read_caps: bool,
    /// [`DeviceState::caps`] are what the IPA reported (they replaced the
    /// registered ones).
    #[serde(default)]
    pub caps_from_ipa: bool,
    /// A hold was logged at this time (logged again an hour later at most).
    pub hold_logged: Secs,
}

/// One device, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Its eUICC's EID.
    pub eid: Eid,
    /// Its group.
    pub group: GroupId,
    /// Its region, if known.
    pub region: Option<RegionId>,
    /// Its tags (bit `i` is the catalog's tag `i`).
    pub tags: u64,
    /// Vendor (the fleet's name table).
    pub vendor: NameId,
    /// Model.
    pub model: NameId,
    /// Firmware text.
    pub firmware: NameId,
    /// Firmware version, for compatibility filters.
    pub firmware_version: Version,
    /// Capabilities: as the device's IPA reported them when
    /// [`Work::caps_from_ipa`], else as registered (the defaults when the
    /// registration left them out).
    pub caps: Capabilities,
    /// What the fleet wants.
    pub desired: Desired,
    /// What is known.
    pub observed: Observed,
    /// Connectivity of the current profile.
    pub health: Health,
    /// Recent switches.
    pub switches: SwitchLog,
    /// When it last entered its current mode.
    pub mode_since: Secs,
    /// Action in flight and retries.
    pub work: Work,
    /// Its rollout, if one touched it.
    pub rollout: Option<RolloutMark>,
}

/// A device as registered (from the IPA's data, an inventory, an API call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// EID.
    pub eid: Eid,
    /// Group name.
    pub group: String,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Firmware version text (`4.10.2`).
    pub firmware: String,
    /// Region name.
    #[serde(default)]
    pub region: Option<String>,
    /// Tag names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Capabilities, when the operator knows them. Left out, the fleet
    /// reads them through the device's IPA (an IpaEuiccDataRequest for
    /// EUICCInfo2 and IpaCapabilities) before doing anything else for it.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// Profiles already on the eUICC (from listProfileInfo), if known.
    #[serde(default)]
    pub profiles: Vec<KnownProfile>,
}

/// A profile a device already has when it is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownProfile {
    /// Its ICCID.
    pub iccid: Iccid,
    /// Its profile type, if it is one of the catalog's.
    #[serde(default)]
    pub profile_type: Option<crate::config::ProfileRef>,
    /// Enabled.
    #[serde(default)]
    pub enabled: bool,
    /// Carries the fallback attribute.
    #[serde(default)]
    pub fallback_attribute: bool,
    /// Known to work (registered and passed data).
    #[serde(default)]
    pub works: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_is_compact() {
        let size = std::mem::size_of::<DeviceState>();
        assert!(size <= 256, "DeviceState is {size} bytes");
    }

    #[test]
    fn networks_pack_into_three_bcd_bytes_and_back() {
        use crate::catalog::MccMnc;
        for text in [
            "310-410", "234-15", "001-01", "999-999", "262-01", "310-041",
        ] {
            let n = MccMnc::parse(text).unwrap();
            let p = PackedPlmn::new(n);
            assert_eq!(p.get(), Some(n), "{text}");
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<PackedPlmn>(&json).unwrap(), p);
        }
        // 3GPP TS 24.008's coding of 310-410 and 234-15.
        assert_eq!(
            PackedPlmn::new(MccMnc::parse("310-410").unwrap()).0,
            [0x13, 0x00, 0x14]
        );
        assert_eq!(
            PackedPlmn::new(MccMnc::parse("234-15").unwrap()).0,
            [0x32, 0xF4, 0x51]
        );
        assert_eq!(PackedPlmn::default().get(), None);
        // JSON: the text, also as six digits or the object form.
        let n = MccMnc::parse("310-410").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"310-410\"");
        for text in [
            "\"310-410\"",
            "\"310410\"",
            r#"{"mcc": 310, "mnc": 410, "three_digit_mnc": true}"#,
        ] {
            assert_eq!(serde_json::from_str::<MccMnc>(text).unwrap(), n, "{text}");
        }
        for bad in [
            "\"31-0410\"",
            "\"\"",
            "310410",
            r#"{"mcc": 3100, "mnc": 1, "three_digit_mnc": false}"#,
            r#"{"mcc": 310, "mnc": 100, "three_digit_mnc": false}"#,
        ] {
            assert!(serde_json::from_str::<MccMnc>(bad).is_err(), "{bad}");
        }
        let odd = MccMnc {
            mcc: 1000,
            mnc: 1,
            three_digit_mnc: false,
        };
        assert_eq!(PackedPlmn::new(odd), PackedPlmn::NONE);
    }

    #[test]
    fn versions() {
        assert_eq!(Version::parse("4.10.2"), Some(Version([4, 10, 2])));
        assert_eq!(Version::parse("v1.2"), Some(Version([1, 2, 0])));
        assert_eq!(Version::parse("2.0.1-rc1+b7"), Some(Version([2, 0, 1])));
        assert!(Version::parse("4.10.2") > Version::parse("4.9.9"));
        for bad in ["", "a", "1..2", "1.2.3.4", "70000", "1.x"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn switch_log_counts_the_last_hour() {
        let mut log = SwitchLog::default();
        let t = |s: i64| Timestamp(s * 1000);
        for s in [1000, 2000, 3000, 4599] {
            log.push(Secs::of(t(s)));
        }
        assert_eq!(log.in_last_hour(t(4599)), 4);
        assert_eq!(log.in_last_hour(t(4600)), 3);
        assert_eq!(log.last(), Secs(4599));
        for s in 0..20 {
            log.push(Secs::of(t(10_000 + s)));
        }
        assert_eq!(usize::from(log.in_last_hour(t(10_020))), log.at.len());
    }
}
