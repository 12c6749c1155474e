//! What the eIM keeps per device: the association, the queue, the profiles
//! as last reported, what the eUICC last said about itself; and the results
//! and notifications it stored.
//!
//! A device's queue lives inside its [`DeviceRecord`], so one versioned
//! record holds everything a step changes together (the counter, the queue,
//! the acknowledgements owed): a commit that finds the record changed writes
//! nothing, and two eIM instances can never issue the same counter. The
//! items keep the exact bytes that were signed and are delivered; results
//! keep the exact bytes that were received.

use ferrosim_asn1::esipa::Sgp32Version;

use crate::ids::Timestamp;
use crate::ids::{Counter, Eid, EimId, EimTransactionId, Iccid};

/// One device (EID) associated with this eIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The eUICC.
    pub eid: Eid,
    /// The association with the eUICC.
    pub association: Association,
    /// Marked by the operator as an IPA emulating the IoT functions on a
    /// consumer (SGP.22-only) eUICC: its package results cannot carry an eUICC
    /// signature. Only such devices may return unsigned results, and every
    /// result they return is stored as [`Trust::Unsigned`].
    pub emulated: bool,
    /// The ESipa wire version its IPA speaks (learned from its messages).
    pub ipa_version: Sgp32Version,
    /// Open items, in delivery order: the head is delivered until it is done.
    pub queue: Vec<QueueItem>,
    /// Id of the next item queued for this device.
    pub next_item: u64,
    /// Sequence numbers of stored results the eUICC was not yet told about
    /// (results that came with a HandleNotification, which has no answer).
    pub pending_acks: Vec<i64>,
    /// The device's profiles as last reported.
    pub profiles: ProfileSnapshot,
    /// What the eUICC last reported about itself (IpaEuiccData).
    pub euicc: EuiccData,
    /// The last GetEimPackage.
    pub last_poll: Option<PollInfo>,
    /// When the association was made.
    pub created_at: Timestamp,
    /// The last sanitization the operator ordered (kept after the device is
    /// released and associated again, for its report).
    pub sanitization: Option<Sanitization>,
    /// The last enable with rollbackFlag the eUICC ran, while a
    /// ProfileRollback back from it is still possible (no later package
    /// run): what the eUICC's signed rollback result is checked against.
    pub rollback: Option<Box<RollbackGrant>>,
}

impl DeviceRecord {
    /// Whether the eIM asked the eUICC to forget it (a sanitization's
    /// release) and the device was not associated again since: nothing more
    /// may be queued for it.
    pub fn release_ordered(&self) -> bool {
        self.sanitization
            .as_ref()
            .is_some_and(|s| s.release.is_some() && s.reassociated_at.is_none())
    }

    /// The open item with this counter.
    pub fn item_with_counter(&self, counter: Counter) -> Option<&QueueItem> {
        self.queue.iter().find(|i| i.counter == Some(counter))
    }

    /// The eIM transaction ids a result of this device may name: its open
    /// items', and the one of the package a rollback is possible from (a
    /// v1.0 IPA names the device of a rollback result only by it). What the
    /// stores index for [`crate::EimStore::device_by_transaction`].
    pub fn transaction_ids(&self) -> impl Iterator<Item = &EimTransactionId> {
        self.queue
            .iter()
            .map(|i| &i.transaction_id)
            .chain(self.rollback.as_ref().map(|g| &g.transaction_id))
    }

    /// The open item with this eIM transaction id.
    pub fn item_with_transaction(&self, id: &EimTransactionId) -> Option<&QueueItem> {
        self.queue.iter().find(|i| i.transaction_id == *id)
    }
}

/// The association of an eUICC with this eIM (what the eUICC holds as this
/// eIM's `EimConfigurationData`, and what the eIM verified about the eUICC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The eIM id the eUICC knows this eIM by.
    pub eim_id: EimId,
    /// The last counter value used: the next package carries the one after.
    /// Starts at the value configured in the eUICC.
    pub counter: Counter,
    /// The association token, if one was agreed: part of every signature
    /// input (TLV `84`).
    pub association_token: Option<i64>,
    /// The SGP.32 version the eUICC implements: it decides what
    /// `euiccSignEPR` / `euiccSignEPE` cover. Updated from EUICCInfo2.
    pub euicc_version: Sgp32Version,
    /// CERT.EUICC.ECDSA (DER), verified against the trusted CIs.
    pub euicc_certificate: Vec<u8>,
    /// CERT.EUM.ECDSA (DER).
    pub eum_certificate: Vec<u8>,
    /// The eUICC's public key (SEC1) from the verified certificate.
    pub euicc_public_key: Vec<u8>,
}

/// What an item asks the device to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A signed eUICC package (`EuiccPackageRequest`, BF51).
    Package,
    /// A profile download trigger (`ProfileDownloadTriggerRequest`, BF54).
    DownloadTrigger,
    /// A request for eUICC data (`IpaEuiccDataRequest`, BF52).
    DataRequest,
    /// A ProfileRollback the IPA ran on its own after an enable with
    /// rollbackFlag: never queued, only the kind of the eUICC's signed
    /// result (`rollbackResult`, with the enabling package's counter value),
    /// stored under an item id of its own.
    Rollback,
}

/// An enable with rollbackFlag that the eUICC ran (its signed result
/// stored): the IPA may return to the profile enabled before
/// (ES10b ProfileRollback) until the eUICC runs another package. The eUICC
/// then signs a `rollbackResult` with the counter value and eimTransactionId
/// of this package and a new sequence number, which the IPA delivers in a
/// ProvideEimPackageResult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackGrant {
    /// The enabling package's counter value.
    pub counter: Counter,
    /// Its eIM transaction id.
    pub transaction_id: EimTransactionId,
    /// Its `eimSignature` element (`5F37` TLV): part of the result
    /// signature input of v1.0 eUICCs.
    pub eim_signature: Vec<u8>,
    /// The profile the package enabled.
    pub enabled: Iccid,
    /// The profile enabled before it, as the eIM knew (none: none enabled,
    /// or not known).
    pub previous: Option<Iccid>,
    /// The sequence number of the rollback result once stored (the same
    /// result sent again is acknowledged again, another one refused).
    pub rolled_back: Option<i64>,
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Not delivered yet.
    Queued,
    /// Handed to the device's IPA (`times` polls so far) without a result.
    Delivered {
        /// First delivery.
        first: Timestamp,
        /// How often it was handed out.
        times: u32,
    },
    /// The eUICC answered `replayError`: it already ran this package (or a
    /// later one), so the result is asked for with an IpaEuiccDataRequest.
    AwaitingResult {
        /// When the replayError arrived.
        since: Timestamp,
    },
}

/// One open item of a device's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// Per device, increasing in queue order.
    pub id: u64,
    /// What it is.
    pub kind: ItemKind,
    /// The package's counter value (packages only).
    pub counter: Option<Counter>,
    /// The eimTransactionId it carries.
    pub transaction_id: EimTransactionId,
    /// The DER delivered to the IPA, as signed for packages.
    pub der: Vec<u8>,
    /// Where it is.
    pub state: ItemState,
    /// The verified `replayError` the eUICC answered this package with, kept
    /// while its real result is asked for ([`ItemState::AwaitingResult`]).
    pub replay_error: Option<Vec<u8>>,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// The profiles of a device as last reported (by a listProfileInfo result,
/// by the results of enable/disable/delete/fallback packages, by profile
/// notifications).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSnapshot {
    /// The profiles.
    pub profiles: Vec<ProfileEntry>,
    /// When the eIM last learned something about them.
    pub reported_at: Option<Timestamp>,
    /// The IPA said the state changed (`notifyStateChange`) after that.
    pub stale: bool,
}

/// One profile as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileEntry {
    /// Its ICCID.
    pub iccid: Iccid,
    /// Enabled or not.
    pub enabled: bool,
    /// Carries the fallback attribute.
    pub fallback: bool,
    /// Profile class (0 test, 1 provisioning, 2 operational), when reported.
    pub class: Option<i64>,
    /// Profile name, when reported.
    pub name: Option<String>,
    /// Service provider name, when reported.
    pub service_provider: Option<String>,
}

/// What the eUICC last reported about itself in an IpaEuiccData (DER of
/// each piece as received).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EuiccData {
    /// EUICCInfo1 (BF20).
    pub info1: Option<Vec<u8>>,
    /// EUICCInfo2 (BF22).
    pub info2: Option<Vec<u8>>,
    /// The default SM-DP+ address.
    pub default_smdp_address: Option<String>,
    /// The root SM-DS address.
    pub root_smds_address: Option<String>,
    /// CERT.EUM.ECDSA.
    pub eum_certificate: Option<Vec<u8>>,
    /// CERT.EUICC.ECDSA.
    pub euicc_certificate: Option<Vec<u8>>,
    /// IpaCapabilities.
    pub ipa_capabilities: Option<Vec<u8>>,
    /// DeviceInfo.
    pub device_info: Option<Vec<u8>>,
    /// When.
    pub reported_at: Option<Timestamp>,
}

/// The last GetEimPackage of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollInfo {
    /// When.
    pub at: Timestamp,
    /// The registered PLMN it reported (MCC/MNC, 3 bytes).
    pub r_plmn: Option<Vec<u8>>,
    /// The stateChangeCause it gave.
    pub state_change_cause: Option<i64>,
    /// The version the message was read as.
    pub read_as: Sgp32Version,
}

/// Whether a stored result's eUICC signature was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// `euiccSignEPR` / `euiccSignEPE` verified with the associated eUICC's key.
    Verified,
    /// From a device marked as emulating the IoT functions: not signed by an
    /// eUICC, shown as unsigned.
    Unsigned,
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The eUICC ran the package: one result code per operation (`0` ok),
    /// `None` for results without a code (listProfileInfo ok, getRAT, listEim).
    Executed(Vec<Option<i64>>),
    /// The eUICC refused the package (`EuiccPackageErrorCode`: invalidEid 3,
    /// replayError 4, counterValueOutOfRange 6, ...; unsigned error codes for
    /// unsigned errors).
    PackageError(i64),
    /// The IPA could not process the item (`EimPackageResultErrorCode`:
    /// invalidPackageFormat 1, unknownPackage 2, undefinedError 127).
    Rejected(i64),
    /// A download trigger ended with a profile installation result; `ok` if
    /// its final result is a success.
    Installed {
        /// The installation succeeded.
        ok: bool,
        /// The profile, when the result names it.
        iccid: Option<Iccid>,
    },
    /// A download trigger failed before installation (profileDownloadErrorReason).
    DownloadFailed(i64),
    /// An IpaEuiccDataRequest was answered (`Some(code)` for an error answer).
    DataReported(Option<i64>),
}

/// The stored end of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    /// The device.
    pub eid: Eid,
    /// The item it ends.
    pub item_id: u64,
    /// What the item was.
    pub kind: ItemKind,
    /// The package's counter (packages only).
    pub counter: Option<Counter>,
    /// The eUICC's sequence number of a package result (acknowledged with
    /// EimAcknowledgements).
    pub seq_number: Option<i64>,
    /// Whether its signature was verified (package results).
    pub trust: Option<Trust>,
    /// How it ended.
    pub outcome: ItemOutcome,
    /// The result as received (for a package result: its CHOICE alternative,
    /// the bytes the signature covers part of).
    pub der: Vec<u8>,
    /// The version of the message it came in.
    pub read_as: Sgp32Version,
    /// When it was stored.
    pub received_at: Timestamp,
}

/// A profile notification the eUICC produced (install, enable, disable,
/// delete), kept for the SM-DP+ it is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// The device.
    pub eid: Eid,
    /// The eUICC's notification sequence number (unique per eUICC).
    pub seq_number: i64,
    /// The PendingNotification as received.
    pub der: Vec<u8>,
    /// When it was stored.
    pub received_at: Timestamp,
}

/// One operation of a sanitization's wipe package, in package order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WipeStep {
    /// unsetFallbackAttribute (v1.2 eUICCs, when a profile carries it).
    UnsetFallback,
    /// disable of an enabled profile.
    Disable(Iccid),
    /// delete of a profile.
    Delete(Iccid),
    /// The closing listProfileInfo: what is left, signed by the eUICC in
    /// the same result as the deletes.
    ListProfiles,
}

/// A sanitization: a device leaving the fleet or changing hands is wiped
/// through the eIM (its profiles disabled and deleted, what is left listed
/// by the eUICC), then released (this eIM's configuration deleted from the
/// eUICC) so that it can be associated again. What it did is read from the
/// eUICC's signed results (see [`crate::steps::sanitize::report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitization {
    /// When the operator ordered it.
    pub started_at: Timestamp,
    /// Undelivered items it withdrew from the queue (their ids).
    pub withdrawn: Vec<u64>,
    /// The profiles the eIM knew of when it started.
    pub known_profiles: Vec<ProfileEntry>,
    /// Provisioning profiles (class 1) are kept (the device's bootstrap
    /// connectivity).
    pub keep_provisioning: bool,
    /// The wipe package's item id.
    pub wipe_item: u64,
    /// Its operations, in order.
    pub wipe_steps: Vec<WipeStep>,
    /// The listEim eCO package's item id: which eIMs the eUICC still knows.
    pub eim_list_item: u64,
    /// The release (deleteEim of this eIM), once ordered.
    pub release: Option<Release>,
    /// When the device was associated again after its release.
    pub reassociated_at: Option<Timestamp>,
}

/// The release of a sanitized device: an eCO deleteEim of this eIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The deleteEim package's item id.
    pub item_id: u64,
    /// When it was ordered.
    pub ordered_at: Timestamp,
}
