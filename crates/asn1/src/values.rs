//! The SGP.22 enumerated values that every side speaks: profile class and
//! state, the profile management operations of notifications, profile
//! policy rules and the reasons of CancelSession.
//!
//! The generated types carry these as bare integers and BIT STRINGs (the
//! ASN.1 modules define them so); the SM-DP+, the eUICC and the LPA all use
//! the named values below instead, so each number is written down once.

use std::fmt;
use std::str::FromStr;

use rasn::types::{BitStr, Integer};
use serde::{Deserialize, Serialize};

use crate::codec::named_bits;
use crate::rsp;

/// A value that is not one of the names of an SGP.22 enumeration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what} ({expected})")]
pub struct UnknownValue {
    /// What was being read, e.g. `profile class`.
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// The accepted values.
    pub expected: &'static str,
}

/// `ProfileClass`: what a profile is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileClass {
    /// `test(0)`: a test profile.
    Test,
    /// `provisioning(1)`: bootstrap connectivity, used to fetch other profiles.
    Provisioning,
    /// `operational(2)`: an ordinary subscription (the DEFAULT).
    Operational,
}

impl ProfileClass {
    /// The ASN.1 integer.
    pub const fn code(self) -> i64 {
        match self {
            Self::Test => 0,
            Self::Provisioning => 1,
            Self::Operational => 2,
        }
    }

    /// From the ASN.1 integer; `None` for a value SGP.22 does not define.
    pub fn from_code(code: i64) -> Option<Self> {
        [Self::Test, Self::Provisioning, Self::Operational]
            .into_iter()
            .find(|c| c.code() == code)
    }

    /// The generated ASN.1 value.
    pub fn to_asn1(self) -> rsp::ProfileClass {
        rsp::ProfileClass(Integer::from(self.code()))
    }

    /// From the generated ASN.1 value.
    pub fn from_asn1(value: &rsp::ProfileClass) -> Option<Self> {
        i64::try_from(&value.0).ok().and_then(Self::from_code)
    }

    /// The lower-case name (`test`, `provisioning`, `operational`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Provisioning => "provisioning",
            Self::Operational => "operational",
        }
    }
}

impl fmt::Display for ProfileClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProfileClass {
    type Err = UnknownValue;

    /// Parses a name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Test, Self::Provisioning, Self::Operational]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownValue {
                what: "profile class",
                value: s.to_owned(),
                expected: "test, provisioning or operational",
            })
    }
}

/// `ProfileState`: whether an installed profile is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileState {
    /// `disabled(0)`: installed, not in use.
    Disabled,
    /// `enabled(1)`: the profile the device uses (at most one).
    Enabled,
}

impl ProfileState {
    /// The ASN.1 integer.
    pub const fn code(self) -> i64 {
        match self {
            Self::Disabled => 0,
            Self::Enabled => 1,
        }
    }

    /// From the ASN.1 integer; `None` for a value SGP.22 does not define.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Disabled),
            1 => Some(Self::Enabled),
            _ => None,
        }
    }

    /// The generated ASN.1 value.
    pub fn to_asn1(self) -> rsp::ProfileState {
        rsp::ProfileState(Integer::from(self.code()))
    }
}

impl fmt::Display for ProfileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
        })
    }
}

/// A profile management operation: one bit of `NotificationEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationOperation {
    /// `notificationInstall(0)`.
    Install,
    /// `notificationEnable(1)`.
    Enable,
    /// `notificationDisable(2)`.
    Disable,
    /// `notificationDelete(3)`.
    Delete,
}

impl NotificationOperation {
    /// All operations in bit order.
    pub const ALL: [Self; 4] = [Self::Install, Self::Enable, Self::Disable, Self::Delete];

    /// The bit number in `NotificationEvent`.
    pub const fn bit(self) -> usize {
        match self {
            Self::Install => 0,
            Self::Enable => 1,
            Self::Disable => 2,
            Self::Delete => 3,
        }
    }

    /// The `NotificationEvent` with only this bit set (DER: no trailing zero bits).
    pub fn event(self) -> rsp::NotificationEvent {
        rsp::NotificationEvent(named_bits(&[self.bit()]))
    }

    /// Whether `event` has this operation's bit set.
    pub fn is_in(self, event: &rsp::NotificationEvent) -> bool {
        event.0.get(self.bit()).is_some_and(|b| *b)
    }

    /// The operation of a notification's event: its first set bit, `None`
    /// when no bit SGP.22 defines is set.
    pub fn of_event(bits: &BitStr) -> Option<Self> {
        bits.first_one()
            .and_then(|i| Self::ALL.into_iter().find(|op| op.bit() == i))
    }

    /// [`NotificationOperation::is_in`] on the DER contents of a
    /// `NotificationEvent` BIT STRING (the unused-bits octet, then the
    /// bits), read without decoding it; `None` when the contents are
    /// malformed.
    pub fn is_in_contents(self, contents: &[u8]) -> Option<bool> {
        bit_is_set(contents, self.bit())
    }

    /// The address of the first NotificationConfigurationInformation of
    /// the StoreMetadataRequest (`BF25`) DER `metadata_der` whose event has
    /// this operation's bit set, read from its `notificationConfigurationInfo`
    /// (`B6`) alone, without decoding the rest: a device asks on every
    /// profile operation, and the whole StoreMetadata decoded costs more
    /// than the operation. The components are automatically tagged:
    /// `profileManagementOperation` \[0\] (BIT STRING, `80`),
    /// `notificationAddress` \[1\] (UTF8String, `81`). `None` when there is
    /// none, or when the part read is malformed.
    pub fn address_in_metadata(self, metadata_der: &[u8]) -> Option<String> {
        use crate::tlv::Tlv;
        let metadata = Tlv::parse_exact(metadata_der).ok()?;
        let list = metadata.find(TAG_NOTIFICATION_CONFIGURATION).ok()??;
        for info in list.children() {
            let info = info.ok()?;
            let mut parts = info.children();
            let event = parts.next()?.ok()?;
            let address = parts.next()?.ok()?;
            if event.tag != 0x80 || address.tag != 0x81 {
                return None;
            }
            if self.is_in_contents(event.value)? {
                return std::str::from_utf8(address.value).ok().map(str::to_owned);
            }
        }
        None
    }
}

/// `notificationConfigurationInfo` \[22\] of StoreMetadata (`B6`).
const TAG_NOTIFICATION_CONFIGURATION: u32 = 0xB6;

/// Whether bit `bit` of the BIT STRING contents `value` (unused-bits
/// octet, then the bits) is set; `None` when the contents are malformed.
fn bit_is_set(value: &[u8], bit: usize) -> Option<bool> {
    let (&unused, bits) = value.split_first()?;
    if unused > 7 || (bits.is_empty() && unused != 0) {
        return None;
    }
    let len = bits.len() * 8 - usize::from(unused);
    Some(bit < len && bits[bit / 8] & (0x80 >> (bit % 8)) != 0)
}

impl fmt::Display for NotificationOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Install => "install",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Delete => "delete",
        })
    }
}

/// Profile policy rules (`PprIds` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PolicyRules {
    /// `pprUpdateControl(0)`: the rules may be updated only by the SM-DP+.
    #[serde(default)]
    pub update_control: bool,
    /// `ppr1(1)`: disabling this profile is not allowed.
    pub disable_not_allowed: bool,
    /// `ppr2(2)`: deleting this profile is not allowed.
    pub delete_not_allowed: bool,
}

impl PolicyRules {
    /// Whether PPR1 or PPR2 is set (the rules that restrict the end user).
    pub fn any(self) -> bool {
        self.disable_not_allowed || self.delete_not_allowed
    }

    /// The set bits as a mask: bit N of the mask is `PprIds` bit N.
    pub fn mask(self) -> i64 {
        i64::from(self.update_control)
            | (i64::from(self.disable_not_allowed) << 1)
            | (i64::from(self.delete_not_allowed) << 2)
    }

    /// From a mask built by [`PolicyRules::mask`]; other bits are ignored.
    pub fn from_mask(mask: i64) -> Self {
        Self {
            update_control: mask & 0b001 != 0,
            disable_not_allowed: mask & 0b010 != 0,
            delete_not_allowed: mask & 0b100 != 0,
        }
    }

    /// From the `PprIds` BIT STRING (bits beyond ppr2 are ignored).
    pub fn from_bits(bits: &BitStr) -> Self {
        let bit = |i: usize| bits.get(i).is_some_and(|b| *b);
        Self {
            update_control: bit(0),
            disable_not_allowed: bit(1),
            delete_not_allowed: bit(2),
        }
    }

    /// The `PprIds` value in its DER form.
    pub fn to_asn1(self) -> rsp::PprIds {
        let set: Vec<usize> = [
            self.update_control,
            self.disable_not_allowed,
            self.delete_not_allowed,
        ]
        .iter()
        .enumerate()
        .filter_map(|(i, on)| on.then_some(i))
        .collect();
        rsp::PprIds(named_bits(&set))
    }
}

/// `CancelSessionReason`: why an LPA or eUICC ended a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelSessionReason {
    /// `endUserRejection(0)`: the end user refused (or gave no confirmation code).
    EndUserRejection,
    /// `postponed(1)`: the end user postponed.
    Postponed,
    /// `timeout(2)`: a step timed out.
    Timeout,
    /// `pprNotAllowed(3)`: the profile's policy rules are not allowed.
    PprNotAllowed,
    /// `metadataMismatch(4)`: the metadata does not match what was expected.
    MetadataMismatch,
    /// `loadBppExecutionError(5)`: loading the bound profile package failed.
    LoadBppExecutionError,
    /// `undefinedReason(127)`: anything else.
    UndefinedReason,
    /// A value SGP.22 does not define, kept as received.
    Other(i64),
}

impl CancelSessionReason {
    const NAMED: [Self; 7] = [
        Self::EndUserRejection,
        Self::Postponed,
        Self::Timeout,
        Self::PprNotAllowed,
        Self::MetadataMismatch,
        Self::LoadBppExecutionError,
        Self::UndefinedReason,
    ];

    /// The ASN.1 integer.
    pub const fn code(self) -> i64 {
        match self {
            Self::EndUserRejection => 0,
            Self::Postponed => 1,
            Self::Timeout => 2,
            Self::PprNotAllowed => 3,
            Self::MetadataMismatch => 4,
            Self::LoadBppExecutionError => 5,
            Self::UndefinedReason => 127,
            Self::Other(code) => code,
        }
    }

    /// From the ASN.1 integer (an undefined one is kept as [`Self::Other`]).
    pub fn from_code(code: i64) -> Self {
        Self::NAMED
            .into_iter()
            .find(|r| r.code() == code)
            .unwrap_or(Self::Other(code))
    }

    /// From the generated ASN.1 value; an integer too large for `i64` is
    /// `undefinedReason`.
    pub fn from_asn1(value: &rsp::CancelSessionReason) -> Self {
        i64::try_from(&value.0).map_or(Self::UndefinedReason, Self::from_code)
    }

    /// The generated ASN.1 value.
    pub fn to_asn1(self) -> rsp::CancelSessionReason {
        rsp::CancelSessionReason(Integer::from(self.code()))
    }

    /// Whether the order may be downloaded again later: the end user
    /// postponed, a step timed out, or the reason is not known.
    pub fn allows_retry(self) -> bool {
        matches!(
            self,
            Self::Postponed | Self::Timeout | Self::UndefinedReason | Self::Other(_)
        )
    }
}

impl fmt::Display for CancelSessionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EndUserRejection => "endUserRejection",
            Self::Postponed => "postponed",
            Self::Timeout => "timeout",
            Self::PprNotAllowed => "pprNotAllowed",
            Self::MetadataMismatch => "metadataMismatch",
            Self::LoadBppExecutionError => "loadBppExecutionError",
            Self::UndefinedReason => "undefinedReason",
            Self::Other(code) => return write!(f, "reason {code}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_der, encode_der};

    #[test]
    fn profile_class_codes_names_and_der() {
        for class in [
            ProfileClass::Test,
            ProfileClass::Provisioning,
            ProfileClass::Operational,
        ] {
            assert_eq!(ProfileClass::from_code(class.code()), Some(class));
            assert_eq!(class.name().parse::<ProfileClass>(), Ok(class));
            assert_eq!(
                class.name().to_uppercase().parse::<ProfileClass>(),
                Ok(class)
            );
            assert_eq!(ProfileClass::from_asn1(&class.to_asn1()), Some(class));
        }
        assert_eq!(ProfileClass::from_code(3), None);
        assert!("bootstrap".parse::<ProfileClass>().is_err());
    }

    #[test]
    fn notification_events_are_der_minimal_and_read_back() {
        for op in NotificationOperation::ALL {
            let event = op.event();
            assert_eq!(event.0.len(), op.bit() + 1);
            assert!(op.is_in(&event));
            assert_eq!(NotificationOperation::of_event(&event.0), Some(op));
            let der = encode_der(&event).unwrap();
            let back: rsp::NotificationEvent = decode_der(&der).unwrap();
            assert_eq!(back, event);
        }
        assert_eq!(NotificationOperation::of_event(&named_bits(&[])), None);
        assert_eq!(NotificationOperation::of_event(&named_bits(&[5])), None);
    }

    #[test]
    fn policy_rules_round_trip_as_mask_and_bits() {
        for mask in 0..8 {
            let rules = PolicyRules::from_mask(mask);
            assert_eq!(rules.mask(), mask);
            assert_eq!(PolicyRules::from_bits(&rules.to_asn1().0), rules);
        }
        assert!(PolicyRules::default().to_asn1().0.is_empty());
        assert!(!PolicyRules::from_mask(1).any());
        assert!(PolicyRules::from_mask(2).any());
    }

    #[test]
    fn cancel_reasons_keep_undefined_codes() {
        for code in [0, 1, 2, 3, 4, 5, 127, 6, 99, -1] {
            let reason = CancelSessionReason::from_code(code);
            assert_eq!(reason.code(), code);
            assert_eq!(CancelSessionReason::from_asn1(&reason.to_asn1()), reason);
        }
        assert_eq!(
            CancelSessionReason::from_code(6),
            CancelSessionReason::Other(6)
        );
        assert!(CancelSessionReason::Timeout.allows_retry());
        assert!(!CancelSessionReason::EndUserRejection.allows_retry());
        assert_eq!(
            CancelSessionReason::PprNotAllowed.to_string(),
            "pprNotAllowed"
        );
    }

    #[test]
    fn bit_string_contents() {
        assert_eq!(bit_is_set(&[0x04, 0x40], 1), Some(true));
        assert_eq!(bit_is_set(&[0x04, 0x40], 0), Some(false));
        assert_eq!(bit_is_set(&[0x04, 0x40], 4), Some(false));
        assert_eq!(bit_is_set(&[0x00], 0), Some(false));
        assert_eq!(bit_is_set(&[0x01], 0), None);
        assert_eq!(bit_is_set(&[0x08, 0xFF], 0), None);
        assert_eq!(bit_is_set(&[], 0), None);
    }
}
