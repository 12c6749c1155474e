//! What the ES10 functions return, decoded from the eUICC's TLVs.
//!
//! Decoding reads the elements SGP.22 defines by tag and skips any other
//! (extensions of later versions). Where a value travels on to the SM-DP+
//! (EUICCInfo1, notifications, installation results), the bytes are kept as
//! received in a `raw` field: signatures cover them.

use std::fmt;

use ferrosim_asn1::tlv::Tlv;
use ferrosim_saip::Iccid;

use super::Es10Error;

/// A three-byte version (`VersionType`): major, minor, revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub [u8; 3]);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0[0], self.0[1], self.0[2])
    }
}

/// EUICCInfo1 (`BF20`): what the SM-DP+ needs to start mutual authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuiccInfo1 {
    /// The whole `BF20` as received (sent on in initiateAuthentication).
    pub raw: Vec<u8>,
    /// SGP.22 version the eUICC implements.
    pub svn: Version,
    /// Key ids of the CIs whose signatures the eUICC verifies.
    pub ci_pkids_for_verification: Vec<Vec<u8>>,
    /// Key ids of the CIs whose certificates the eUICC signs with.
    pub ci_pkids_for_signing: Vec<Vec<u8>>,
}

/// Extended card resource information (ETSI TS 102 226).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtCardResource {
    /// Number of installed applications.
    pub installed_applications: Option<u64>,
    /// Free non-volatile memory, bytes.
    pub free_non_volatile_memory: Option<u64>,
    /// Free volatile memory, bytes.
    pub free_volatile_memory: Option<u64>,
}

/// EUICCInfo2 (`BF22`): the eUICC's capabilities and versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuiccInfo2 {
    /// The whole `BF22` as received.
    pub raw: Vec<u8>,
    /// Profile package version supported.
    pub profile_version: Version,
    /// SGP.22 version implemented.
    pub svn: Version,
    /// Firmware version.
    pub firmware_version: Version,
    /// Free memory and installed applications.
    pub ext_card_resource: ExtCardResource,
    /// ETSI TS 102 241 version.
    pub ts102241_version: Option<Version>,
    /// GlobalPlatform version.
    pub globalplatform_version: Option<Version>,
    /// CI key ids for verification.
    pub ci_pkids_for_verification: Vec<Vec<u8>>,
    /// CI key ids for signing.
    pub ci_pkids_for_signing: Vec<Vec<u8>>,
    /// eUICC category (0 other, 1 basic, 2 medium, 3 contactless).
    pub euicc_category: Option<i64>,
    /// Protection profile version.
    pub pp_version: Option<Version>,
    /// SAS accreditation number of the production site.
    pub sas_accreditation_number: Option<String>,
}

/// Whether a profile is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileState {
    /// 0.
    Disabled,
    /// 1.
    Enabled,
    /// A value SGP.22 does not define.
    Other(i64),
}

impl fmt::Display for ProfileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("disabled"),
            Self::Enabled => f.write_str("enabled"),
            Self::Other(v) => write!(f, "state {v}"),
        }
    }
}

/// The class of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileClass {
    /// 0: test profile.
    Test,
    /// 1: provisioning profile.
    Provisioning,
    /// 2: operational profile.
    Operational,
    /// A value SGP.22 does not define.
    Other(i64),
}

impl ProfileClass {
    fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Test,
            1 => Self::Provisioning,
            2 => Self::Operational,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for ProfileClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Test => f.write_str("test"),
            Self::Provisioning => f.write_str("provisioning"),
            Self::Operational => f.write_str("operational"),
            Self::Other(v) => write!(f, "class {v}"),
        }
    }
}

/// Profile policy rules (`PprIds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PolicyRules {
    /// PPR1: the profile may not be disabled.
    pub disable_not_allowed: bool,
    /// PPR2: the profile may not be deleted.
    pub delete_not_allowed: bool,
}

impl PolicyRules {
    fn from_bits(bits: &[bool]) -> Self {
        Self {
            disable_not_allowed: bits.get(1).copied().unwrap_or(false),
            delete_not_allowed: bits.get(2).copied().unwrap_or(false),
        }
    }

    /// Whether any rule is set.
    pub fn any(self) -> bool {
        self.disable_not_allowed || self.delete_not_allowed
    }
}

/// One installed profile (`ProfileInfo`, tag `E3`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileInfo {
    /// ICCID digits (as stored, check digit not verified).
    pub iccid: Option<String>,
    /// AID of the profile's ISD-P.
    pub isdp_aid: Option<Vec<u8>>,
    /// Enabled or disabled.
    pub state: Option<ProfileState>,
    /// Nickname set by the end user.
    pub nickname: Option<String>,
    /// Service provider name.
    pub service_provider_name: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
    /// Class.
    pub class: Option<ProfileClass>,
    /// Policy rules.
    pub policy_rules: PolicyRules,
}

/// Which profile an ES10c function acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileId {
    /// By ICCID.
    Iccid(Iccid),
    /// By the AID of its ISD-P (5 to 16 bytes).
    IsdpAid(Vec<u8>),
}

/// The operation a notification reports (`NotificationEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationOperation {
    /// A profile was installed.
    Install,
    /// A profile was enabled.
    Enable,
    /// A profile was disabled.
    Disable,
    /// A profile was deleted.
    Delete,
    /// No bit, or a bit SGP.22 does not define.
    Unknown,
}

impl NotificationOperation {
    fn from_bits(bits: &[bool]) -> Self {
        match bits.iter().position(|b| *b) {
            Some(0) => Self::Install,
            Some(1) => Self::Enable,
            Some(2) => Self::Disable,
            Some(3) => Self::Delete,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for NotificationOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Install => "install",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Delete => "delete",
            Self::Unknown => "unknown",
        })
    }
}

/// `NotificationMetadata` (`BF2F`): a pending notification's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationMetadata {
    /// The eUICC's sequence number (used to retrieve and remove it).
    pub seq_number: i64,
    /// What happened.
    pub operation: NotificationOperation,
    /// Where to send it (an SM-DP+ address).
    pub address: String,
    /// The profile concerned, if named.
    pub iccid: Option<String>,
}

/// A pending notification as the eUICC returns it, ready for
/// `handleNotification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    /// Its header.
    pub metadata: NotificationMetadata,
    /// The whole signed notification (`BF37` or `30`) as received.
    pub raw: Vec<u8>,
}

/// How an installation ended, from the ProfileInstallationResult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationOutcome {
    /// Installed in the ISD-P with this AID.
    Success {
        /// The ISD-P's AID.
        isdp_aid: Vec<u8>,
    },
    /// Installation failed.
    Failure {
        /// Which BPP command failed (`BppCommandId`).
        bpp_command_id: i64,
        /// Why (`ErrorReason`).
        error_reason: i64,
    },
}

/// The ProfileInstallationResult (`BF37`) that ends LoadBoundProfilePackage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationResult {
    /// The whole `BF37` as received (sent with handleNotification).
    pub raw: Vec<u8>,
    /// Transaction id of the download.
    pub transaction_id: Vec<u8>,
    /// Its notification header (sequence number, address, ICCID).
    pub metadata: NotificationMetadata,
    /// Success or failure.
    pub outcome: InstallationOutcome,
}

/// The addresses configured in the eUICC (ES10a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredAddresses {
    /// Default SM-DP+ address, if set.
    pub default_dp_address: Option<String>,
    /// Root SM-DS address.
    pub root_ds_address: String,
}

/// What eUICCMemoryReset deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryResetOptions {
    /// Delete operational profiles.
    pub operational_profiles: bool,
    /// Delete field-loaded test profiles.
    pub test_profiles: bool,
    /// Reset the default SM-DP+ address.
    pub default_smdp_address: bool,
}

/// Reason of an ES10b CancelSession (`CancelSessionReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelSessionReason {
    /// 0: the end user refused (or gave no confirmation code).
    EndUserRejection,
    /// 1: the end user postponed.
    Postponed,
    /// 2: a step timed out.
    Timeout,
    /// 3: the profile's policy rules are not allowed.
    PprNotAllowed,
    /// 4: the metadata does not match what was expected.
    MetadataMismatch,
    /// 5: loading the bound profile package failed.
    LoadBppExecutionError,
    /// 127: anything else.
    UndefinedReason,
}

impl CancelSessionReason {
    /// The ASN.1 integer.
    pub fn code(self) -> i64 {
        match self {
            Self::EndUserRejection => 0,
            Self::Postponed => 1,
            Self::Timeout => 2,
            Self::PprNotAllowed => 3,
            Self::MetadataMismatch => 4,
            Self::LoadBppExecutionError => 5,
            Self::UndefinedReason => 127,
        }
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
        })
    }
}

/// The device as AuthenticateServer tells the SM-DP+ about it (`DeviceInfo`
/// in ctxParams1): type allocation code, optional IMEI, and the 3GPP
/// releases it supports (`[release, 0, 0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Type allocation code: the first 8 digits of the IMEI, 4 bytes BCD.
    pub tac: [u8; 4],
    /// The IMEI, 8 bytes, if the device shares it.
    pub imei: Option<[u8; 8]>,
    /// GSM release supported.
    pub gsm_release: Option<u8>,
    /// UTRAN release supported.
    pub utran_release: Option<u8>,
    /// E-UTRAN (EPC) release supported.
    pub eutran_epc_release: Option<u8>,
    /// NR with 5GC release supported.
    pub nr_5gc_release: Option<u8>,
}

impl Default for DeviceInfo {
    /// A 4G/5G device of 3GPP release 15 without IMEI.
    fn default() -> Self {
        Self {
            tac: [0x35, 0x29, 0x06, 0x11],
            imei: None,
            gsm_release: Some(15),
            utran_release: Some(15),
            eutran_epc_release: Some(15),
            nr_5gc_release: Some(15),
        }
    }
}

impl DeviceInfo {
    /// The ASN.1 value.
    pub fn to_asn1(&self) -> ferrosim_asn1::rsp::DeviceInfo {
        use ferrosim_asn1::rasn::types::FixedOctetString;
        use ferrosim_asn1::rsp;
        let release = |r: Option<u8>| r.map(|r| rsp::VersionType(FixedOctetString::new([r, 0, 0])));
        let capabilities = rsp::DeviceCapabilities::new(
            release(self.gsm_release),
            release(self.utran_release),
            None,
            None,
            None,
            release(self.eutran_epc_release),
            None,
            None,
            None,
            release(self.nr_5gc_release),
            None,
            None,
            None,
            None,
            None,
        );
        rsp::DeviceInfo::new(
            rsp::Octet4(FixedOctetString::new(self.tac)),
            capabilities,
            self.imei.map(|i| rsp::Octet8(FixedOctetString::new(i))),
        )
    }
}

// ---- decoding ---------------------------------------------------------------

/// Parses `bytes` as exactly one TLV with `tag`.
pub(crate) fn outer<'a>(
    function: &'static str,
    bytes: &'a [u8],
    tag: u32,
) -> Result<Tlv<'a>, Es10Error> {
    Tlv::parse_tagged(bytes, tag).map_err(|e| Es10Error::bad(function, e))
}

/// The children of `tlv`, all well-formed.
pub(crate) fn children<'a>(
    function: &'static str,
    tlv: &Tlv<'a>,
) -> Result<Vec<Tlv<'a>>, Es10Error> {
    tlv.children()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Es10Error::bad(function, e))
}

/// The first child with `tag`, or an error naming it.
pub(crate) fn required<'a>(
    function: &'static str,
    items: &[Tlv<'a>],
    tag: u32,
    name: &str,
) -> Result<Tlv<'a>, Es10Error> {
    optional(items, tag).ok_or_else(|| Es10Error::bad(function, format!("no {name} ({tag:X})")))
}

/// The first child with `tag`.
pub(crate) fn optional<'a>(items: &[Tlv<'a>], tag: u32) -> Option<Tlv<'a>> {
    items.iter().find(|t| t.tag == tag).copied()
}

/// A BER INTEGER value of 1 to 8 bytes.
pub(crate) fn integer(function: &'static str, value: &[u8]) -> Result<i64, Es10Error> {
    if value.is_empty() || value.len() > 8 {
        return Err(Es10Error::bad(
            function,
            format!("{}-byte INTEGER", value.len()),
        ));
    }
    let negative = value[0] & 0x80 != 0;
    let start: i64 = if negative { -1 } else { 0 };
    Ok(value
        .iter()
        .fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// A UTF8String value.
pub(crate) fn utf8(function: &'static str, value: &[u8]) -> Result<String, Es10Error> {
    String::from_utf8(value.to_vec()).map_err(|_| Es10Error::bad(function, "text is not UTF-8"))
}

/// The bits of a BIT STRING value (first octet: unused bits).
pub(crate) fn bits(function: &'static str, value: &[u8]) -> Result<Vec<bool>, Es10Error> {
    let (&unused, data) = value
        .split_first()
        .ok_or_else(|| Es10Error::bad(function, "empty BIT STRING"))?;
    if unused > 7 || (data.is_empty() && unused != 0) {
        return Err(Es10Error::bad(function, "invalid BIT STRING"));
    }
    let count = data.len() * 8 - usize::from(unused);
    Ok((0..count)
        .map(|i| data[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect())
}

/// A VersionType value.
pub(crate) fn version(function: &'static str, value: &[u8]) -> Result<Version, Es10Error> {
    <[u8; 3]>::try_from(value)
        .map(Version)
        .map_err(|_| Es10Error::bad(function, format!("{}-byte version", value.len())))
}

/// ICCID digits from the nibble-swapped BCD coding, `F` padding dropped.
pub(crate) fn iccid_digits(function: &'static str, value: &[u8]) -> Result<String, Es10Error> {
    let mut digits = String::with_capacity(value.len() * 2);
    for &b in value {
        for nibble in [b & 0x0F, b >> 4] {
            match nibble {
                0..=9 => digits.push(char::from(b'0' + nibble)),
                0xF => {}
                _ => return Err(Es10Error::bad(function, "ICCID is not BCD")),
            }
        }
    }
    Ok(digits)
}

/// The OCTET STRINGs of a `SEQUENCE OF SubjectKeyIdentifier`.
fn key_ids(function: &'static str, list: &Tlv<'_>) -> Result<Vec<Vec<u8>>, Es10Error> {
    Ok(children(function, list)?
        .into_iter()
        .filter(|t| t.tag == 0x04)
        .map(|t| t.value.to_vec())
        .collect())
}

impl EuiccInfo1 {
    /// Decodes a `BF20`.
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "GetEUICCInfo1";
        let tlv = outer(F, &raw, 0xBF20)?;
        let items = children(F, &tlv)?;
        let svn = version(F, required(F, &items, 0x82, "svn")?.value)?;
        let verification = key_ids(
            F,
            &required(F, &items, 0xA9, "CI key ids for verification")?,
        )?;
        let signing = key_ids(F, &required(F, &items, 0xAA, "CI key ids for signing")?)?;
        Ok(Self {
            svn,
            ci_pkids_for_verification: verification,
            ci_pkids_for_signing: signing,
            raw,
        })
    }
}

impl EuiccInfo2 {
    /// Decodes a `BF22`.
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "GetEUICCInfo2";
        let tlv = outer(F, &raw, 0xBF22)?;
        let items = children(F, &tlv)?;
        let opt_version = |tag| -> Result<Option<Version>, Es10Error> {
            optional(&items, tag)
                .map(|t| version(F, t.value))
                .transpose()
        };
        let info = Self {
            profile_version: version(F, required(F, &items, 0x81, "profileVersion")?.value)?,
            svn: version(F, required(F, &items, 0x82, "svn")?.value)?,
            firmware_version: version(F, required(F, &items, 0x83, "euiccFirmwareVer")?.value)?,
            ext_card_resource: optional(&items, 0x84)
                .map(|t| ext_card_resource(t.value))
                .unwrap_or_default(),
            ts102241_version: opt_version(0x86)?,
            globalplatform_version: opt_version(0x87)?,
            ci_pkids_for_verification: optional(&items, 0xA9)
                .map(|t| key_ids(F, &t))
                .transpose()?
                .unwrap_or_default(),
            ci_pkids_for_signing: optional(&items, 0xAA)
                .map(|t| key_ids(F, &t))
                .transpose()?
                .unwrap_or_default(),
            euicc_category: optional(&items, 0x8B)
                .map(|t| integer(F, t.value))
                .transpose()?,
            pp_version: opt_version(0x04)?,
            sas_accreditation_number: optional(&items, 0x0C)
                .map(|t| utf8(F, t.value))
                .transpose()?,
            raw: Vec::new(),
        };
        Ok(Self { raw, ..info })
    }
}

/// TS 102 226 extended card resource TLVs (81 apps, 82 free NVM, 83 free RAM).
/// Unreadable content is reported as absent rather than failing the whole info.
fn ext_card_resource(value: &[u8]) -> ExtCardResource {
    let mut out = ExtCardResource::default();
    for item in ferrosim_asn1::tlv::TlvIter::new(value) {
        let Ok(item) = item else { break };
        if item.value.len() > 8 {
            continue;
        }
        let n = item
            .value
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        match item.tag {
            0x81 => out.installed_applications = Some(n),
            0x82 => out.free_non_volatile_memory = Some(n),
            0x83 => out.free_volatile_memory = Some(n),
            _ => {}
        }
    }
    out
}

impl ProfileInfo {
    /// Decodes one `E3` element.
    pub(crate) fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        let items = children(function, tlv)?;
        let text = |tag| -> Result<Option<String>, Es10Error> {
            optional(&items, tag)
                .map(|t| utf8(function, t.value))
                .transpose()
        };
        Ok(Self {
            iccid: optional(&items, 0x5A)
                .map(|t| iccid_digits(function, t.value))
                .transpose()?,
            isdp_aid: optional(&items, 0x4F).map(|t| t.value.to_vec()),
            state: optional(&items, 0x9F70)
                .map(|t| integer(function, t.value))
                .transpose()?
                .map(|v| match v {
                    0 => ProfileState::Disabled,
                    1 => ProfileState::Enabled,
                    other => ProfileState::Other(other),
                }),
            nickname: text(0x90)?,
            service_provider_name: text(0x91)?,
            profile_name: text(0x92)?,
            class: optional(&items, 0x95)
                .map(|t| integer(function, t.value))
                .transpose()?
                .map(ProfileClass::from_code),
            policy_rules: optional(&items, 0x99)
                .map(|t| bits(function, t.value))
                .transpose()?
                .map(|b| PolicyRules::from_bits(&b))
                .unwrap_or_default(),
        })
    }
}

impl NotificationMetadata {
    /// Decodes a `BF2F` element.
    pub(crate) fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        tlv.expect_tag(0xBF2F)
            .map_err(|e| Es10Error::bad(function, e))?;
        let items = children(function, tlv)?;
        Ok(Self {
            seq_number: integer(
                function,
                required(function, &items, 0x80, "seqNumber")?.value,
            )?,
            operation: NotificationOperation::from_bits(&bits(
                function,
                required(function, &items, 0x81, "profileManagementOperation")?.value,
            )?),
            address: utf8(
                function,
                required(function, &items, 0x0C, "notificationAddress")?.value,
            )?,
            iccid: optional(&items, 0x5A)
                .map(|t| iccid_digits(function, t.value))
                .transpose()?,
        })
    }
}

impl PendingNotification {
    /// Decodes one `PendingNotification`: a ProfileInstallationResult
    /// (`BF37`) or an OtherSignedNotification (`30`).
    pub fn decode(function: &'static str, tlv: &Tlv<'_>) -> Result<Self, Es10Error> {
        let metadata = match tlv.tag {
            0xBF37 => InstallationResult::decode(tlv.raw.to_vec())?.metadata,
            0x30 => {
                let items = children(function, tlv)?;
                NotificationMetadata::decode(
                    function,
                    &required(function, &items, 0xBF2F, "tbsOtherNotification")?,
                )?
            }
            other => {
                return Err(Es10Error::bad(
                    function,
                    format!("unknown notification tag {other:X}"),
                ));
            }
        };
        Ok(Self {
            metadata,
            raw: tlv.raw.to_vec(),
        })
    }
}

impl InstallationResult {
    /// Decodes a ProfileInstallationResult (`BF37`).
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "LoadBoundProfilePackage";
        let tlv = outer(F, &raw, 0xBF37)?;
        let items = children(F, &tlv)?;
        let data = required(F, &items, 0xBF27, "profileInstallationResultData")?;
        let fields = children(F, &data)?;
        let transaction_id = required(F, &fields, 0x80, "transactionId")?.value.to_vec();
        let metadata = NotificationMetadata::decode(
            F,
            &required(F, &fields, 0xBF2F, "notificationMetadata")?,
        )?;
        let result = required(F, &fields, 0xA2, "finalResult")?;
        let choice = children(F, &result)?;
        let outcome = match choice.first() {
            Some(ok) if ok.tag == 0xA0 => {
                let parts = children(F, ok)?;
                InstallationOutcome::Success {
                    isdp_aid: optional(&parts, 0x4F)
                        .map(|t| t.value.to_vec())
                        .unwrap_or_default(),
                }
            }
            Some(err) if err.tag == 0xA1 => {
                let parts = children(F, err)?;
                InstallationOutcome::Failure {
                    bpp_command_id: integer(F, required(F, &parts, 0x80, "bppCommandId")?.value)?,
                    error_reason: integer(F, required(F, &parts, 0x81, "errorReason")?.value)?,
                }
            }
            _ => {
                return Err(Es10Error::bad(
                    F,
                    "finalResult is neither success nor error",
                ));
            }
        };
        Ok(Self {
            transaction_id,
            metadata,
            outcome,
            raw,
        })
    }

    /// The ICCID of the profile, when the metadata names one.
    pub fn iccid(&self) -> Option<&str> {
        self.metadata.iccid.as_deref()
    }
}

/// The name SGP.22 gives to a `BppCommandId`.
pub fn bpp_command_name(id: i64) -> &'static str {
    match id {
        0 => "initialiseSecureChannel",
        1 => "configureISDP",
        2 => "storeMetadata",
        3 => "storeMetadata2",
        4 => "replaceSessionKeys",
        5 => "loadProfileElements",
        _ => "unknown command",
    }
}

/// The name SGP.22 gives to an installation `ErrorReason`.
pub fn installation_error_name(reason: i64) -> &'static str {
    match reason {
        1 => "incorrectInputValues",
        2 => "invalidSignature",
        3 => "invalidTransactionId",
        4 => "unsupportedCrtValues",
        5 => "unsupportedRemoteOperationType",
        6 => "unsupportedProfileClass",
        7 => "scp03tStructureError",
        8 => "scp03tSecurityError",
        9 => "installFailedDueToIccidAlreadyExistsOnEuicc",
        10 => "installFailedDueToInsufficientMemoryForProfile",
        11 => "installFailedDueToInterruption",
        12 => "installFailedDueToPEProcessingError",
        13 => "installFailedDueToIccidMismatch",
        14 => "testProfileInstallFailedDueToInvalidNaaKey",
        15 => "pprNotAllowed",
        17 => "installFailedDueToUnknownError",
        127 => "undefinedError",
        _ => "unknown reason",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosim_asn1::tlv::tlv;

    #[test]
    fn primitives() {
        assert_eq!(integer("t", &[0x01]).unwrap(), 1);
        assert_eq!(integer("t", &[0x00, 0xFF]).unwrap(), 255);
        assert_eq!(integer("t", &[0xFF]).unwrap(), -1);
        assert!(integer("t", &[]).is_err());
        assert!(integer("t", &[0; 9]).is_err());
        assert_eq!(
            bits("t", &[0x04, 0x80]).unwrap(),
            vec![true, false, false, false]
        );
        assert_eq!(bits("t", &[0x00]).unwrap(), Vec::<bool>::new());
        assert!(bits("t", &[]).is_err());
        assert!(bits("t", &[0x08, 0x00]).is_err());
        assert!(bits("t", &[0x01]).is_err());
        assert_eq!(iccid_digits("t", &[0x98, 0x10, 0xF5]).unwrap(), "89015");
        assert!(iccid_digits("t", &[0xA1]).is_err());
        assert_eq!(Version([2, 2, 2]).to_string(), "2.2.2");
    }

    #[test]
    fn info1() {
        let mut body = tlv(0x82, &[2, 5, 0]);
        body.extend(tlv(0xA9, &tlv(0x04, &[1; 20])));
        body.extend(tlv(
            0xAA,
            &[tlv(0x04, &[2; 20]), tlv(0x04, &[3; 20])].concat(),
        ));
        body.extend(tlv(0x99, &[0])); // unknown element: skipped
        let raw = tlv(0xBF20, &body);
        let info = EuiccInfo1::decode(raw.clone()).unwrap();
        assert_eq!(info.svn, Version([2, 5, 0]));
        assert_eq!(info.ci_pkids_for_verification, vec![vec![1; 20]]);
        assert_eq!(info.ci_pkids_for_signing.len(), 2);
        assert_eq!(info.raw, raw);
        assert!(EuiccInfo1::decode(tlv(0xBF20, &tlv(0x82, &[2, 5]))).is_err());
        assert!(EuiccInfo1::decode(vec![0xBF, 0x20]).is_err());
    }

    #[test]
    fn installation_result_failure() {
        let mut meta = tlv(0x80, &[7]);
        meta.extend(tlv(0x81, &[0x07, 0x80]));
        meta.extend(tlv(0x0C, b"smdp.example.com"));
        let mut data = tlv(0x80, &[1, 2, 3]);
        data.extend(tlv(0xBF2F, &meta));
        data.extend(tlv(0x06, &[0x88, 0x37, 0x0A]));
        data.extend(tlv(
            0xA2,
            &tlv(0xA1, &[tlv(0x80, &[5]), tlv(0x81, &[12])].concat()),
        ));
        let mut body = tlv(0xBF27, &data);
        body.extend(tlv(0x5F37, &[0; 64]));
        let r = InstallationResult::decode(tlv(0xBF37, &body)).unwrap();
        assert_eq!(r.metadata.seq_number, 7);
        assert_eq!(r.metadata.operation, NotificationOperation::Install);
        assert_eq!(r.iccid(), None);
        assert_eq!(
            r.outcome,
            InstallationOutcome::Failure {
                bpp_command_id: 5,
                error_reason: 12
            }
        );
        assert_eq!(
            installation_error_name(12),
            "installFailedDueToPEProcessingError"
        );
        assert_eq!(bpp_command_name(5), "loadProfileElements");
    }
}
