//! What the ES10 functions return, decoded from the eUICC's TLVs.
//!
//! Decoding reads the elements SGP.22 defines by tag and skips any other
//! (extensions of later versions). Where a value travels on to the SM-DP+
//! (EUICCInfo1, notifications, installation results), the bytes are kept as
//! received in a `raw` field: signatures cover them.

use std::fmt;

use ferrosim_saip::Iccid;

pub use ferrosim_asn1::values::{
    CancelSessionReason, NotificationOperation, PolicyRules, ProfileClass, ProfileState,
};

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

/// One installed profile (`ProfileInfo`, tag `E3`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileInfo {
    /// ICCID digits (as stored, check digit not verified).
    pub iccid: Option<String>,
    /// AID of the profile's ISD-P.
    pub isdp_aid: Option<Vec<u8>>,
    /// Enabled or disabled (`None` when absent or not a value SGP.22 defines).
    pub state: Option<ProfileState>,
    /// Nickname set by the end user.
    pub nickname: Option<String>,
    /// Service provider name.
    pub service_provider_name: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
    /// Class (`None` when absent or not a value SGP.22 defines).
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

/// `NotificationMetadata` (`BF2F`): a pending notification's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationMetadata {
    /// The eUICC's sequence number (used to retrieve and remove it).
    pub seq_number: i64,
    /// What happened (`None`: no operation bit SGP.22 defines is set).
    pub operation: Option<NotificationOperation>,
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
    pub transaction_id: ferrosim_ids::TransactionId,
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
