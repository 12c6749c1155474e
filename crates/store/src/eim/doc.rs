//! The stored form of the eIM's records: a device record as one JSON
//! document (bytes as hex), a result's outcome as JSON beside its columns.
//!
//! The documents are written and read here only, with every field named, so
//! the stored format does not change when a Rust type of `ferrosim-eim` is
//! refactored; a document that does not read back is
//! [`StoreError::Corrupt`]. Identifiers are read into their validating types
//! ([`Iccid`], [`EimTransactionId`]) as the document is parsed, so a stored
//! value that is not one is refused there too.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_eim::record::{EuiccData, PollInfo};
use ferrosim_eim::store::StoreError;
use ferrosim_eim::{
    Association, Counter, DeviceRecord, Eid, EimId, EimTransactionId, Iccid, ItemKind, ItemOutcome,
    ItemState, ProfileEntry, ProfileSnapshot, QueueItem, Release, RollbackGrant, Sanitization,
    Timestamp, Trust, WipeStep,
};
use serde::{Deserialize, Serialize};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("eIM {what}: {detail}"))
}

/// `"v1.0"` / `"v1.2"`.
pub(crate) fn version_text(v: Sgp32Version) -> &'static str {
    v.as_str()
}

pub(crate) fn version_of(text: &str) -> Result<Sgp32Version, StoreError> {
    match text {
        "v1.0" => Ok(Sgp32Version::V1_0),
        "v1.2" => Ok(Sgp32Version::V1_2),
        other => Err(corrupt("SGP.32 version", other)),
    }
}

pub(crate) fn kind_text(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Package => "package",
        ItemKind::DownloadTrigger => "download_trigger",
        ItemKind::DataRequest => "data_request",
        ItemKind::Rollback => "rollback",
    }
}

pub(crate) fn kind_of(text: &str) -> Result<ItemKind, StoreError> {
    match text {
        "package" => Ok(ItemKind::Package),
        "download_trigger" => Ok(ItemKind::DownloadTrigger),
        "data_request" => Ok(ItemKind::DataRequest),
        "rollback" => Ok(ItemKind::Rollback),
        other => Err(corrupt("item kind", other)),
    }
}

pub(crate) fn trust_text(t: Trust) -> &'static str {
    match t {
        Trust::Verified => "verified",
        Trust::Unsigned => "unsigned",
    }
}

pub(crate) fn trust_of(text: &str) -> Result<Trust, StoreError> {
    match text {
        "verified" => Ok(Trust::Verified),
        "unsigned" => Ok(Trust::Unsigned),
        other => Err(corrupt("result trust", other)),
    }
}

fn unhex(text: &str, what: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(text).map_err(|e| corrupt(what, e))
}

fn opt_unhex(text: &Option<String>, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
    text.as_deref().map(|t| unhex(t, what)).transpose()
}

fn opt_hex(bytes: &Option<Vec<u8>>) -> Option<String> {
    bytes.as_ref().map(hex::encode)
}

fn counter(v: u32) -> Result<Counter, StoreError> {
    Counter::new(v.into()).map_err(|e| corrupt("counter", e))
}

/// A device record as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceDoc {
    eim_id: String,
    counter: u32,
    association_token: Option<i64>,
    euicc_version: String,
    euicc_certificate: String,
    eum_certificate: String,
    euicc_public_key: String,
    emulated: bool,
    ipa_version: String,
    queue: Vec<ItemDoc>,
    next_item: u64,
    pending_acks: Vec<i64>,
    profiles: Vec<ProfileDoc>,
    profiles_reported_at: Option<i64>,
    profiles_stale: bool,
    euicc: EuiccDoc,
    last_poll: Option<PollDoc>,
    created_at: i64,
    /// Absent in records written before sanitizations existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sanitization: Option<SanitizationDoc>,
    /// Absent when no rollback is possible (and in records written before
    /// rollback results were accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollback: Option<RollbackDoc>,
}

/// A [`RollbackGrant`] as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackDoc {
    counter: u32,
    transaction_id: EimTransactionId,
    eim_signature: String,
    enabled: Iccid,
    previous: Option<Iccid>,
    rolled_back: Option<i64>,
}

impl RollbackDoc {
    fn from_grant(g: &RollbackGrant) -> Self {
        Self {
            counter: g.counter.get(),
            transaction_id: g.transaction_id,
            eim_signature: hex::encode(&g.eim_signature),
            enabled: g.enabled.clone(),
            previous: g.previous.clone(),
            rolled_back: g.rolled_back,
        }
    }

    fn into_grant(self) -> Result<RollbackGrant, StoreError> {
        Ok(RollbackGrant {
            counter: counter(self.counter)?,
            transaction_id: self.transaction_id,
            eim_signature: unhex(&self.eim_signature, "rollback eimSignature")?,
            enabled: self.enabled,
            previous: self.previous,
            rolled_back: self.rolled_back,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SanitizationDoc {
    started_at: i64,
    withdrawn: Vec<u64>,
    known_profiles: Vec<ProfileDoc>,
    keep_provisioning: bool,
    wipe_item: u64,
    /// `unset_fallback`, `disable:<ICCID>`, `delete:<ICCID>`, `list_profiles`.
    wipe_steps: Vec<String>,
    eim_list_item: u64,
    release_item: Option<u64>,
    release_ordered_at: Option<i64>,
    reassociated_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemDoc {
    id: u64,
    kind: String,
    counter: Option<u32>,
    transaction_id: EimTransactionId,
    der: String,
    /// `queued`, `delivered` or `awaiting_result`.
    state: String,
    /// Delivered: first delivery; awaiting: since.
    at: Option<i64>,
    times: Option<u32>,
    replay_error: Option<String>,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDoc {
    iccid: Iccid,
    enabled: bool,
    fallback: bool,
    class: Option<i64>,
    name: Option<String>,
    service_provider: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EuiccDoc {
    info1: Option<String>,
    info2: Option<String>,
    default_smdp_address: Option<String>,
    root_smds_address: Option<String>,
    eum_certificate: Option<String>,
    euicc_certificate: Option<String>,
    ipa_capabilities: Option<String>,
    device_info: Option<String>,
    reported_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollDoc {
    at: i64,
    r_plmn: Option<String>,
    state_change_cause: Option<i64>,
    read_as: String,
}

impl DeviceDoc {
    pub(crate) fn from_record(r: &DeviceRecord) -> Self {
        let a = &r.association;
        Self {
            eim_id: a.eim_id.as_str().to_owned(),
            counter: a.counter.get(),
            association_token: a.association_token,
            euicc_version: version_text(a.euicc_version).to_owned(),
            euicc_certificate: hex::encode(&a.euicc_certificate),
            eum_certificate: hex::encode(&a.eum_certificate),
            euicc_public_key: hex::encode(&a.euicc_public_key),
            emulated: r.emulated,
            ipa_version: version_text(r.ipa_version).to_owned(),
            queue: r.queue.iter().map(ItemDoc::from_item).collect(),
            next_item: r.next_item,
            pending_acks: r.pending_acks.clone(),
            profiles: r
                .profiles
                .profiles
                .iter()
                .map(ProfileDoc::from_entry)
                .collect(),
            profiles_reported_at: r.profiles.reported_at.map(|t| t.0),
            profiles_stale: r.profiles.stale,
            euicc: EuiccDoc {
                info1: opt_hex(&r.euicc.info1),
                info2: opt_hex(&r.euicc.info2),
                default_smdp_address: r.euicc.default_smdp_address.clone(),
                root_smds_address: r.euicc.root_smds_address.clone(),
                eum_certificate: opt_hex(&r.euicc.eum_certificate),
                euicc_certificate: opt_hex(&r.euicc.euicc_certificate),
                ipa_capabilities: opt_hex(&r.euicc.ipa_capabilities),
                device_info: opt_hex(&r.euicc.device_info),
                reported_at: r.euicc.reported_at.map(|t| t.0),
            },
            last_poll: r.last_poll.as_ref().map(|p| PollDoc {
                at: p.at.0,
                r_plmn: opt_hex(&p.r_plmn),
                state_change_cause: p.state_change_cause,
                read_as: version_text(p.read_as).to_owned(),
            }),
            created_at: r.created_at.0,
            sanitization: r.sanitization.as_ref().map(|s| SanitizationDoc {
                started_at: s.started_at.0,
                withdrawn: s.withdrawn.clone(),
                known_profiles: s
                    .known_profiles
                    .iter()
                    .map(ProfileDoc::from_entry)
                    .collect(),
                keep_provisioning: s.keep_provisioning,
                wipe_item: s.wipe_item,
                wipe_steps: s.wipe_steps.iter().map(step_text).collect(),
                eim_list_item: s.eim_list_item,
                release_item: s.release.as_ref().map(|r| r.item_id),
                release_ordered_at: s.release.as_ref().map(|r| r.ordered_at.0),
                reassociated_at: s.reassociated_at.map(|t| t.0),
            }),
            rollback: r.rollback.as_deref().map(RollbackDoc::from_grant),
        }
    }

    pub(crate) fn into_record(self, eid: Eid) -> Result<DeviceRecord, StoreError> {
        let queue = self
            .queue
            .into_iter()
            .map(ItemDoc::into_item)
            .collect::<Result<_, _>>()?;
        let profiles = self
            .profiles
            .into_iter()
            .map(ProfileDoc::into_entry)
            .collect::<Result<_, StoreError>>()?;
        let e = self.euicc;
        Ok(DeviceRecord {
            eid,
            association: Association {
                eim_id: EimId::new(&self.eim_id).map_err(|e| corrupt("eIM id", e))?,
                counter: counter(self.counter)?,
                association_token: self.association_token,
                euicc_version: version_of(&self.euicc_version)?,
                euicc_certificate: unhex(&self.euicc_certificate, "eUICC certificate")?,
                eum_certificate: unhex(&self.eum_certificate, "EUM certificate")?,
                euicc_public_key: unhex(&self.euicc_public_key, "eUICC key")?,
            },
            emulated: self.emulated,
            ipa_version: version_of(&self.ipa_version)?,
            queue,
            next_item: self.next_item,
            pending_acks: self.pending_acks,
            profiles: ProfileSnapshot {
                profiles,
                reported_at: self.profiles_reported_at.map(Timestamp),
                stale: self.profiles_stale,
            },
            euicc: EuiccData {
                info1: opt_unhex(&e.info1, "EUICCInfo1")?,
                info2: opt_unhex(&e.info2, "EUICCInfo2")?,
                default_smdp_address: e.default_smdp_address,
                root_smds_address: e.root_smds_address,
                eum_certificate: opt_unhex(&e.eum_certificate, "EUM certificate")?,
                euicc_certificate: opt_unhex(&e.euicc_certificate, "eUICC certificate")?,
                ipa_capabilities: opt_unhex(&e.ipa_capabilities, "IPA capabilities")?,
                device_info: opt_unhex(&e.device_info, "device info")?,
                reported_at: e.reported_at.map(Timestamp),
            },
            last_poll: self
                .last_poll
                .map(|p| {
                    Ok::<_, StoreError>(PollInfo {
                        at: Timestamp(p.at),
                        r_plmn: opt_unhex(&p.r_plmn, "rPLMN")?,
                        state_change_cause: p.state_change_cause,
                        read_as: version_of(&p.read_as)?,
                    })
                })
                .transpose()?,
            created_at: Timestamp(self.created_at),
            sanitization: self
                .sanitization
                .map(SanitizationDoc::into_sanitization)
                .transpose()?,
            rollback: self
                .rollback
                .map(|d| d.into_grant().map(Box::new))
                .transpose()?,
        })
    }
}

fn step_text(step: &WipeStep) -> String {
    match step {
        WipeStep::UnsetFallback => "unset_fallback".to_owned(),
        WipeStep::Disable(i) => format!("disable:{}", i.as_str()),
        WipeStep::Delete(i) => format!("delete:{}", i.as_str()),
        WipeStep::ListProfiles => "list_profiles".to_owned(),
    }
}

fn step_of(text: &str) -> Result<WipeStep, StoreError> {
    let iccid = |t: &str| Iccid::new(t).map_err(|e| corrupt("wipe step ICCID", e));
    match text.split_once(':') {
        None if text == "unset_fallback" => Ok(WipeStep::UnsetFallback),
        None if text == "list_profiles" => Ok(WipeStep::ListProfiles),
        Some(("disable", i)) => Ok(WipeStep::Disable(iccid(i)?)),
        Some(("delete", i)) => Ok(WipeStep::Delete(iccid(i)?)),
        _ => Err(corrupt("wipe step", text)),
    }
}

impl SanitizationDoc {
    fn into_sanitization(self) -> Result<Sanitization, StoreError> {
        let release = match (self.release_item, self.release_ordered_at) {
            (Some(item_id), Some(at)) => Some(Release {
                item_id,
                ordered_at: Timestamp(at),
            }),
            (None, None) => None,
            _ => {
                return Err(corrupt(
                    "sanitization",
                    "a release without its item or time",
                ));
            }
        };
        Ok(Sanitization {
            started_at: Timestamp(self.started_at),
            withdrawn: self.withdrawn,
            known_profiles: self
                .known_profiles
                .into_iter()
                .map(ProfileDoc::into_entry)
                .collect::<Result<_, _>>()?,
            keep_provisioning: self.keep_provisioning,
            wipe_item: self.wipe_item,
            wipe_steps: self
                .wipe_steps
                .iter()
                .map(|t| step_of(t))
                .collect::<Result<_, _>>()?,
            eim_list_item: self.eim_list_item,
            release,
            reassociated_at: self.reassociated_at.map(Timestamp),
        })
    }
}

impl ProfileDoc {
    fn from_entry(p: &ProfileEntry) -> Self {
        Self {
            iccid: p.iccid.clone(),
            enabled: p.enabled,
            fallback: p.fallback,
            class: p.class,
            name: p.name.clone(),
            service_provider: p.service_provider.clone(),
        }
    }

    fn into_entry(self) -> Result<ProfileEntry, StoreError> {
        Ok(ProfileEntry {
            iccid: self.iccid,
            enabled: self.enabled,
            fallback: self.fallback,
            class: self.class,
            name: self.name,
            service_provider: self.service_provider,
        })
    }
}

impl ItemDoc {
    fn from_item(i: &QueueItem) -> Self {
        let (state, at, times) = match i.state {
            ItemState::Queued => ("queued", None, None),
            ItemState::Delivered { first, times } => ("delivered", Some(first.0), Some(times)),
            ItemState::AwaitingResult { since } => ("awaiting_result", Some(since.0), None),
        };
        Self {
            id: i.id,
            kind: kind_text(i.kind).to_owned(),
            counter: i.counter.map(Counter::get),
            transaction_id: i.transaction_id,
            der: hex::encode(&i.der),
            state: state.to_owned(),
            at,
            times,
            replay_error: opt_hex(&i.replay_error),
            created_at: i.created_at.0,
        }
    }

    fn into_item(self) -> Result<QueueItem, StoreError> {
        let state = match (self.state.as_str(), self.at, self.times) {
            ("queued", _, _) => ItemState::Queued,
            ("delivered", Some(first), Some(times)) => ItemState::Delivered {
                first: Timestamp(first),
                times,
            },
            ("awaiting_result", Some(since), _) => ItemState::AwaitingResult {
                since: Timestamp(since),
            },
            (other, _, _) => return Err(corrupt("item state", other)),
        };
        Ok(QueueItem {
            id: self.id,
            kind: kind_of(&self.kind)?,
            counter: self.counter.map(counter).transpose()?,
            transaction_id: self.transaction_id,
            der: unhex(&self.der, "item DER")?,
            state,
            replay_error: opt_unhex(&self.replay_error, "replayError")?,
            created_at: Timestamp(self.created_at),
        })
    }
}

/// An item's outcome as stored.
#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum OutcomeDoc {
    Executed { codes: Vec<Option<i64>> },
    PackageError { code: i64 },
    Rejected { code: i64 },
    Installed { ok: bool, iccid: Option<Iccid> },
    DownloadFailed { reason: i64 },
    DataReported { error: Option<i64> },
}

impl OutcomeDoc {
    pub(crate) fn from_outcome(o: &ItemOutcome) -> Self {
        match o {
            ItemOutcome::Executed(codes) => Self::Executed {
                codes: codes.clone(),
            },
            ItemOutcome::PackageError(code) => Self::PackageError { code: *code },
            ItemOutcome::Rejected(code) => Self::Rejected { code: *code },
            ItemOutcome::Installed { ok, iccid } => Self::Installed {
                ok: *ok,
                iccid: iccid.clone(),
            },
            ItemOutcome::DownloadFailed(reason) => Self::DownloadFailed { reason: *reason },
            ItemOutcome::DataReported(error) => Self::DataReported { error: *error },
        }
    }

    pub(crate) fn into_outcome(self) -> Result<ItemOutcome, StoreError> {
        Ok(match self {
            Self::Executed { codes } => ItemOutcome::Executed(codes),
            Self::PackageError { code } => ItemOutcome::PackageError(code),
            Self::Rejected { code } => ItemOutcome::Rejected(code),
            Self::Installed { ok, iccid } => ItemOutcome::Installed { ok, iccid },
            Self::DownloadFailed { reason } => ItemOutcome::DownloadFailed(reason),
            Self::DataReported { error } => ItemOutcome::DataReported(error),
        })
    }
}
