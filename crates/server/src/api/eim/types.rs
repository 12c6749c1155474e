//! The JSON of the eIM API: requests (camelCase, unknown fields refused)
//! and the views of devices, queues and results.
//!
//! Identifiers are their validating types ([`Eid`], [`Iccid`],
//! [`EimTransactionId`]): on the wire they are the same text as ever (EID
//! and ICCID digits, transaction ids as lower-case hex), and a request or
//! query carrying one that is not valid is refused with 400 while it is
//! read.

use ferrosim_eim::{Eid, EimTransactionId, Iccid};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An SGP.32 version as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum SgpVersion {
    /// SGP.32 v1.2 (and v1.1).
    #[default]
    #[serde(rename = "v1.2")]
    V1_2,
    /// SGP.32 v1.0.
    #[serde(rename = "v1.0")]
    V1_0,
}

/// `POST /api/v1/eim/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssociateRequest {
    /// EID, 32 digits with valid check digits (anything else is refused
    /// with 400 while the body is read).
    #[schema(value_type = String)]
    pub eid: Eid,
    /// CERT.EUM.ECDSA: PEM, or base64 of the DER.
    pub eum_certificate: String,
    /// CERT.EUICC.ECDSA: PEM, or base64 of the DER.
    pub euicc_certificate: String,
    /// The counter value this eIM has in the eUICC (its
    /// EimConfigurationData.counterValue); the first package carries the next.
    #[serde(default)]
    pub counter: u32,
    /// The association token, if the eUICC has one for this eIM.
    #[serde(default)]
    pub association_token: Option<i64>,
    /// The SGP.32 version the eUICC implements.
    #[serde(default)]
    pub euicc_version: SgpVersion,
    /// The IPA emulates the IoT functions on a consumer eUICC: its results
    /// are unsigned (needs an admin token).
    #[serde(default)]
    pub emulated: bool,
}

/// `PUT /api/v1/eim/devices/{eid}/emulated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmulatedRequest {
    /// Mark (true) or unmark (false).
    pub emulated: bool,
}

/// A piece of eUICC data to ask the IPA for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DataItemName {
    /// Pending profile notifications.
    Notifications,
    /// Package results the eUICC still holds.
    PackageResults,
    /// The default SM-DP+ address.
    DefaultSmdpAddress,
    /// The root SM-DS address.
    RootSmdsAddress,
    /// EUICCInfo1.
    EuiccInfo1,
    /// EUICCInfo2.
    EuiccInfo2,
    /// The association token.
    AssociationToken,
    /// The EUM and eUICC certificates.
    Certificates,
    /// The IPA's capabilities.
    IpaCapabilities,
    /// The device's information.
    DeviceInfo,
}

/// An eIM configuration for the eCOs addEim and updateEim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EimConfigurationJson {
    /// The eIM's id (1 to 128 characters).
    pub eim_id: String,
    /// The eIM's FQDN.
    #[serde(default)]
    pub eim_fqdn: Option<String>,
    /// The eIM's counter value in the eUICC.
    #[serde(default)]
    pub counter_value: Option<u32>,
    /// The association token.
    #[serde(default)]
    pub association_token: Option<i64>,
    /// The eIM's public key: base64 of its SubjectPublicKeyInfo DER.
    #[serde(default)]
    pub eim_public_key: Option<String>,
    /// The eIM's certificate: base64 of its DER (instead of the key).
    #[serde(default)]
    pub eim_certificate: Option<String>,
}

/// `POST /api/v1/eim/devices/{eid}/queue`: what to queue, by `operation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(
    tag = "operation",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
// Unit variants are written `{}` so that unknown fields are refused for
// them too (serde ignores extra fields of unit variants in tagged enums).
pub enum QueueRequest {
    /// PSMO enable; with `rollback`, the IPA may return to the previous
    /// profile if the new one does not connect.
    Enable {
        /// The profile's ICCID (refused with 400 unless valid).
        #[schema(value_type = String)]
        iccid: Iccid,
        /// Grant ProfileRollback.
        #[serde(default)]
        rollback: bool,
    },
    /// PSMO disable.
    Disable {
        /// The profile's ICCID (refused with 400 unless valid).
        #[schema(value_type = String)]
        iccid: Iccid,
    },
    /// PSMO delete.
    Delete {
        /// The profile's ICCID (refused with 400 unless valid).
        #[schema(value_type = String)]
        iccid: Iccid,
    },
    /// PSMO listProfileInfo (every profile).
    ListProfiles {},
    /// PSMO getRAT.
    GetRat {},
    /// PSMO setFallbackAttribute (SGP.32 v1.2 eUICCs).
    SetFallback {
        /// The profile's ICCID (refused with 400 unless valid).
        #[schema(value_type = String)]
        iccid: Iccid,
    },
    /// PSMO unsetFallbackAttribute (SGP.32 v1.2 eUICCs).
    UnsetFallback {},
    /// PSMO setDefaultDpAddress (SGP.32 v1.2 eUICCs).
    SetDefaultDpAddress {
        /// The SM-DP+ address (FQDN).
        address: String,
    },
    /// PSMO configureImmediateEnable.
    ConfigureImmediateEnable {
        /// Allow immediate enabling.
        enable: bool,
        /// Its default SM-DP+ address.
        #[serde(default)]
        default_smdp_address: Option<String>,
    },
    /// eCO addEim.
    AddEim {
        /// The eIM to add.
        eim: EimConfigurationJson,
    },
    /// eCO updateEim.
    UpdateEim {
        /// The new configuration.
        eim: EimConfigurationJson,
    },
    /// eCO deleteEim.
    DeleteEim {
        /// The eIM to delete.
        eim_id: String,
    },
    /// eCO listEim.
    ListEim {},
    /// A profile download trigger with an activation code
    /// (`1$SM-DP+ address$matching id`).
    Download {
        /// The activation code.
        activation_code: String,
    },
    /// A request for eUICC data (IpaEuiccDataRequest).
    DataRequest {
        /// What to ask for.
        items: Vec<DataItemName>,
    },
}

/// `GET /api/v1/eim/devices` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Start after this EID (32 digits; anything else is refused with 400).
    #[param(value_type = Option<String>)]
    pub after: Option<Eid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of associated devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceList {
    /// EIDs in ascending order.
    #[schema(value_type = Vec<String>)]
    pub eids: Vec<Eid>,
    /// The `after` of the next page, if there may be one.
    #[schema(value_type = Option<String>)]
    pub next: Option<Eid>,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// EID.
    #[schema(value_type = String)]
    pub eid: Eid,
    /// The eIM id of the association.
    pub eim_id: String,
    /// The last counter value used.
    pub counter: u32,
    /// The association token.
    pub association_token: Option<i64>,
    /// The SGP.32 version of the eUICC.
    pub euicc_version: SgpVersion,
    /// The ESipa version its IPA speaks.
    pub ipa_version: SgpVersion,
    /// Marked as emulating the IoT functions on a consumer eUICC.
    pub emulated: bool,
    /// `verified` (eUICC signatures checked) or `unsigned` (emulated).
    pub results_are: String,
    /// Open items, in delivery order.
    pub queue: Vec<ItemView>,
    /// Profiles as last reported.
    pub profiles: ProfilesView,
    /// The last GetEimPackage.
    pub last_poll: Option<PollView>,
    /// When it was associated (Unix ms).
    pub created_at_ms: i64,
}

/// An open queue item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemView {
    /// Item id.
    pub id: u64,
    /// `package`, `download_trigger` or `data_request`.
    pub kind: String,
    /// The package's counter value.
    pub counter: Option<u32>,
    /// The eIM transaction id (hex).
    #[schema(value_type = String)]
    pub transaction_id: EimTransactionId,
    /// `queued`, `delivered` or `awaiting_result`.
    pub state: String,
    /// How often it was handed to the IPA.
    pub deliveries: u32,
    /// When it was queued (Unix ms).
    pub created_at_ms: i64,
}

/// What was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedView {
    /// Item id.
    pub item_id: u64,
    /// The package's counter value.
    pub counter: Option<u32>,
    /// The eIM transaction id (hex).
    #[schema(value_type = String)]
    pub transaction_id: EimTransactionId,
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultView {
    /// The item it ends (for a `rollback`: an id of its own).
    pub item_id: u64,
    /// `package`, `download_trigger`, `data_request`, or `rollback`: the
    /// eUICC's signed result of a ProfileRollback the device ran on its own
    /// after an enable with rollback (with that package's counter value).
    pub kind: String,
    /// The package's counter value.
    pub counter: Option<u32>,
    /// The eUICC's sequence number of a package result.
    pub seq_number: Option<i64>,
    /// `verified` or `unsigned` (package results).
    pub trust: Option<String>,
    /// How it ended: `{"outcome": "executed", "codes": [0]}`, `package_error`,
    /// `rejected`, `installed`, `download_failed`, `data_reported`.
    #[schema(value_type = Object)]
    pub outcome: serde_json::Value,
    /// The version of the message it came in.
    pub read_as: SgpVersion,
    /// When it was stored (Unix ms).
    pub received_at_ms: i64,
    /// The result as received (base64 DER).
    pub der: String,
}

/// A device's profiles as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilesView {
    /// The profiles.
    pub profiles: Vec<ProfileView>,
    /// When the eIM last learned about them (Unix ms).
    pub reported_at_ms: Option<i64>,
    /// The IPA reported a state change since.
    pub stale: bool,
}

/// One profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    /// ICCID.
    #[schema(value_type = String)]
    pub iccid: Iccid,
    /// Enabled.
    pub enabled: bool,
    /// Carries the fallback attribute.
    pub fallback: bool,
    /// Profile class (0 test, 1 provisioning, 2 operational).
    pub class: Option<i64>,
    /// Profile name.
    pub name: Option<String>,
    /// Service provider.
    pub service_provider: Option<String>,
}

/// The last GetEimPackage of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollView {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Registered PLMN (hex).
    pub r_plmn: Option<String>,
    /// Its stateChangeCause.
    pub state_change_cause: Option<i64>,
    /// The version the message was read as.
    pub read_as: SgpVersion,
}

/// A stored profile notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// The eUICC's sequence number.
    pub seq_number: i64,
    /// When it was stored (Unix ms).
    pub received_at_ms: i64,
    /// The PendingNotification (base64 DER).
    pub der: String,
}

/// `POST /api/v1/eim/devices/{eid}/sanitize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SanitizeRequest {
    /// Keep provisioning profiles (class 1, as the eUICC last listed them):
    /// the device's bootstrap connectivity for its next owner.
    #[serde(default)]
    pub keep_provisioning_profiles: bool,
}

/// One operation of a sanitization's wipe package and the eUICC's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WipeOperationView {
    /// `unset-fallback`, `disable`, `delete` or `list-profiles`.
    pub operation: String,
    /// The profile it addresses.
    #[schema(value_type = Option<String>)]
    pub iccid: Option<Iccid>,
    /// The eUICC's result code (`0` ok; none before the result, and for the
    /// list).
    pub code: Option<i64>,
}

/// What a sanitization wiped, read from the eUICC's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WipedView {
    /// Profiles the eUICC deleted (result code 0).
    #[schema(value_type = Vec<String>)]
    pub profiles_deleted: Vec<Iccid>,
    /// Profiles it disabled first.
    #[schema(value_type = Vec<String>)]
    pub profiles_disabled: Vec<Iccid>,
    /// The fallback attribute was unset.
    pub fallback_unset: bool,
    /// This eIM's configuration in the eUICC: `deleted`, `deleted-last-eim`
    /// (the eUICC has no eIM left), or none (not released yet).
    pub eim_configuration: Option<String>,
    /// Queue items withdrawn before delivery.
    pub queue_items_withdrawn: Vec<u64>,
}

/// What a sanitization kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptView {
    /// Profiles the eUICC listed after the deletes (signed with the deletes);
    /// none before that result.
    pub profiles: Option<Vec<ProfileView>>,
    /// Other eIMs the eUICC still knows (its signed listEim, without this
    /// one); none before that result.
    pub other_eims: Option<Vec<String>>,
    /// What the eIM does not touch, and why.
    pub untouched: Vec<String>,
}

/// Signature checks of the sanitization's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SanitizeTrustView {
    /// The wipe result: `verified` (eUICC signature checked) or `unsigned`.
    pub wipe: Option<String>,
    /// The listEim result.
    pub eim_list: Option<String>,
    /// The deleteEim result.
    pub release: Option<String>,
}

/// The report of a device's last sanitization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SanitizeReportView {
    /// The device.
    #[schema(value_type = String)]
    pub eid: Eid,
    /// `awaiting-results`, `clean`, `not-clean`, `release-ordered` or
    /// `released`.
    pub verdict: String,
    /// Why it is not clean.
    pub reasons: Vec<String>,
    /// When it was ordered (Unix ms).
    pub started_at_ms: i64,
    /// Provisioning profiles were kept.
    pub keep_provisioning_profiles: bool,
    /// The wipe package's item id.
    pub wipe_item: u64,
    /// The listEim package's item id.
    pub eim_list_item: u64,
    /// The deleteEim package's item id, once the release was ordered.
    pub release_item: Option<u64>,
    /// When the release was ordered (Unix ms).
    pub release_ordered_at_ms: Option<i64>,
    /// When the device was associated again (Unix ms).
    pub reassociated_at_ms: Option<i64>,
    /// The wipe package's operations and their codes.
    pub operations: Vec<WipeOperationView>,
    /// What was wiped.
    pub wiped: WipedView,
    /// What was kept.
    pub kept: KeptView,
    /// Whether the eUICC's signatures were verified.
    pub signatures: SanitizeTrustView,
}
