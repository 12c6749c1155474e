//! The eIM API's operations over an [`Eim`], shared by the HTTP handlers
//! and the `ferrosim eim` CLI: parse what the operator gave, call the eIM,
//! turn its records into views and its refusals into [`ApiError`]s.
//!
//! Devices are named by an [`Eid`]: the handlers parse the path's text with
//! [`parse_eid`] (400 for anything else), the CLI with its value parser.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_eim::record::ItemState;
use ferrosim_eim::{
    AssociationRequest, Counter, DataItem, DeviceRecord, DownloadTrigger, Eid, Eim, EimError,
    EimId, EimOperation, EimStore, Iccid, ItemKind, ItemOutcome, Operation, PackageContent,
    SanitizeOptions, SanitizeReport, StoreError, Timestamp, Trust, Verdict, WipeStep,
};
use rand::CryptoRng;

use super::types::*;
use crate::api::ApiError;

/// Most devices in one page.
pub const MAX_PAGE: usize = 1000;

/// An EID from the API's text.
pub fn parse_eid(text: &str) -> Result<Eid, ApiError> {
    text.trim()
        .parse::<Eid>()
        .map_err(|e| ApiError::bad_request(&format!("`{text}` is not an EID: {e}")))
}

/// A certificate given as PEM or as base64 of its DER.
pub fn certificate_bytes(text: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return pem::parse(text)
            .map(|p| p.into_contents())
            .map_err(|e| ApiError::bad_request(&format!("{what}: not PEM: {e}")));
    }
    STANDARD
        .decode(text)
        .map_err(|_| ApiError::bad_request(&format!("{what}: neither PEM nor base64 DER")))
}

fn version(v: SgpVersion) -> Sgp32Version {
    match v {
        SgpVersion::V1_2 => Sgp32Version::V1_2,
        SgpVersion::V1_0 => Sgp32Version::V1_0,
    }
}

fn sgp_version(v: Sgp32Version) -> SgpVersion {
    match v {
        Sgp32Version::V1_2 => SgpVersion::V1_2,
        Sgp32Version::V1_0 => SgpVersion::V1_0,
    }
}

/// An eIM refusal as an API error.
pub fn eim_error(e: EimError) -> ApiError {
    match &e {
        EimError::UnknownDevice(_) | EimError::NoSuchItem(_) => ApiError::not_found(&e.to_string()),
        EimError::NotSanitized(_) => ApiError::not_found(&e.to_string()),
        EimError::AlreadyAssociated(_)
        | EimError::Released(_)
        | EimError::Busy(_)
        | EimError::NotClean(_) => ApiError::conflict(&e.to_string()),
        EimError::Store(StoreError::Stale) => {
            ApiError::conflict("the device changed concurrently too often; try again")
        }
        EimError::Store(_) | EimError::Signing(_) => ApiError::internal(&e.to_string()),
        // A certificate refused by revocation checking says so in its code.
        EimError::CertificateChain(ferrosim_pki::Error::Revoked { .. }) => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "certificate_revoked",
            &e.to_string(),
        ),
        EimError::CertificateChain(ferrosim_pki::Error::RevocationUnknown { .. }) => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "revocation_unknown",
            &e.to_string(),
        ),
        _ => ApiError::refused(&e.to_string()),
    }
}

/// Associates a device.
pub async fn associate<S: EimStore>(
    eim: &Eim<S>,
    request: AssociateRequest,
    now: Timestamp,
) -> Result<DeviceView, ApiError> {
    let association = AssociationRequest {
        eid: request.eid,
        eum_certificate: certificate_bytes(&request.eum_certificate, "eumCertificate")?,
        euicc_certificate: certificate_bytes(&request.euicc_certificate, "euiccCertificate")?,
        counter: Counter::new(request.counter.into()).map_err(eim_error)?,
        association_token: request.association_token,
        euicc_version: version(request.euicc_version),
        emulated: request.emulated,
    };
    eim.associate(association, now).await.map_err(eim_error)?;
    let record = eim.device(&request.eid).await.map_err(eim_error)?;
    Ok(device_view(&record))
}

/// One device.
pub async fn device<S: EimStore>(eim: &Eim<S>, eid: &Eid) -> Result<DeviceView, ApiError> {
    let record = eim.device(eid).await.map_err(eim_error)?;
    Ok(device_view(&record))
}

/// A page of devices.
pub async fn list_devices<S: EimStore>(
    eim: &Eim<S>,
    query: &DeviceListQuery,
) -> Result<DeviceList, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(&format!(
            "limit must be 1..={MAX_PAGE}"
        )));
    }
    let eids = eim
        .store()
        .devices(query.after, limit)
        .await
        .map_err(|e| eim_error(e.into()))?;
    let next = (eids.len() == limit)
        .then(|| eids.last().copied())
        .flatten();
    Ok(DeviceList { eids, next })
}

/// Marks or unmarks a device as emulated.
pub async fn set_emulated<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
    emulated: bool,
) -> Result<DeviceView, ApiError> {
    eim.set_emulated(eid, emulated).await.map_err(eim_error)?;
    device(eim, eid).await
}

/// Queues what `request` asks for.
pub async fn enqueue<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
    request: &QueueRequest,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<QueuedView, ApiError> {
    let queued = match request {
        QueueRequest::Download { activation_code } => {
            check_activation_code(activation_code)?;
            let trigger = DownloadTrigger::ActivationCode(activation_code.trim().to_owned());
            eim.enqueue_download(eid, &trigger, rng, now).await
        }
        QueueRequest::DataRequest { items } => {
            let items: Vec<DataItem> = items.iter().map(|i| data_item(*i)).collect();
            eim.enqueue_data_request(eid, &items, rng, now).await
        }
        other => {
            let content = package_content(other)?;
            eim.enqueue_package(eid, &content, rng, now).await
        }
    }
    .map_err(eim_error)?;
    Ok(QueuedView {
        item_id: queued.item_id,
        counter: queued.counter.map(Counter::get),
        transaction_id: queued.transaction_id,
    })
}

/// Withdraws an undelivered item.
pub async fn withdraw<S: EimStore>(eim: &Eim<S>, eid: &Eid, item: u64) -> Result<(), ApiError> {
    eim.withdraw(eid, item).await.map_err(eim_error)
}

/// A device's results.
pub async fn results<S: EimStore>(eim: &Eim<S>, eid: &Eid) -> Result<Vec<ResultView>, ApiError> {
    eim.device(eid).await.map_err(eim_error)?;
    let results = eim
        .store()
        .results(eid)
        .await
        .map_err(|e| eim_error(e.into()))?;
    Ok(results
        .iter()
        .map(|r| ResultView {
            item_id: r.item_id,
            kind: kind(r.kind).to_owned(),
            counter: r.counter.map(Counter::get),
            seq_number: r.seq_number,
            trust: r.trust.map(|t| trust(t).to_owned()),
            outcome: outcome(&r.outcome),
            read_as: sgp_version(r.read_as),
            received_at_ms: r.received_at.0,
            der: STANDARD.encode(&r.der),
        })
        .collect())
}

/// A device's notifications.
pub async fn notifications<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
) -> Result<Vec<NotificationView>, ApiError> {
    eim.device(eid).await.map_err(eim_error)?;
    let stored = eim
        .store()
        .notifications(eid)
        .await
        .map_err(|e| eim_error(e.into()))?;
    Ok(stored
        .iter()
        .map(|n| NotificationView {
            seq_number: n.seq_number,
            received_at_ms: n.received_at.0,
            der: STANDARD.encode(&n.der),
        })
        .collect())
}

fn check_activation_code(code: &str) -> Result<(), ApiError> {
    let code = code.trim();
    let body = code.strip_prefix("LPA:").unwrap_or(code);
    let mut parts = body.split('$');
    let ok = parts.next() == Some("1")
        && parts
            .next()
            .is_some_and(|a| !a.is_empty() && !a.contains(' '));
    if !ok || code.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "activationCode must read `1$<SM-DP+ address>$<matching id>` (at most 255 characters)",
        ));
    }
    Ok(())
}

fn data_item(i: DataItemName) -> DataItem {
    match i {
        DataItemName::Notifications => DataItem::Notifications,
        DataItemName::PackageResults => DataItem::PackageResults,
        DataItemName::DefaultSmdpAddress => DataItem::DefaultSmdpAddress,
        DataItemName::RootSmdsAddress => DataItem::RootSmdsAddress,
        DataItemName::EuiccInfo1 => DataItem::EuiccInfo1,
        DataItemName::EuiccInfo2 => DataItem::EuiccInfo2,
        DataItemName::AssociationToken => DataItem::AssociationToken,
        DataItemName::Certificates => DataItem::Certificates,
        DataItemName::IpaCapabilities => DataItem::IpaCapabilities,
        DataItemName::DeviceInfo => DataItem::DeviceInfo,
    }
}

/// The eUICC package a queue request stands for.
pub fn package_content(request: &QueueRequest) -> Result<PackageContent, ApiError> {
    let psmo = |op| Ok(PackageContent::Psmos(vec![op]));
    let eco = |op| Ok(PackageContent::Ecos(vec![op]));
    match request {
        QueueRequest::Enable { iccid, rollback } => psmo(Operation::Enable {
            iccid: iccid.clone(),
            rollback: *rollback,
        }),
        QueueRequest::Disable { iccid } => psmo(Operation::Disable {
            iccid: iccid.clone(),
        }),
        QueueRequest::Delete { iccid } => psmo(Operation::Delete {
            iccid: iccid.clone(),
        }),
        QueueRequest::ListProfiles {} => psmo(Operation::ListProfiles),
        QueueRequest::GetRat {} => psmo(Operation::GetRat),
        QueueRequest::SetFallback { iccid } => psmo(Operation::SetFallback {
            iccid: iccid.clone(),
        }),
        QueueRequest::UnsetFallback {} => psmo(Operation::UnsetFallback),
        QueueRequest::SetDefaultDpAddress { address } => psmo(Operation::SetDefaultDpAddress {
            address: fqdn(address)?,
        }),
        QueueRequest::ConfigureImmediateEnable {
            enable,
            default_smdp_address,
        } => psmo(Operation::ConfigureImmediateEnable {
            enable: *enable,
            default_smdp_address: default_smdp_address.as_deref().map(fqdn).transpose()?,
        }),
        QueueRequest::AddEim { eim } => eco(EimOperation::AddEim(eim_configuration(eim)?)),
        QueueRequest::UpdateEim { eim } => eco(EimOperation::UpdateEim(eim_configuration(eim)?)),
        QueueRequest::DeleteEim { eim_id } => eco(EimOperation::DeleteEim(
            EimId::new(eim_id).map_err(|e| ApiError::bad_request(&e.to_string()))?,
        )),
        QueueRequest::ListEim {} => eco(EimOperation::ListEim),
        QueueRequest::Download { .. } | QueueRequest::DataRequest { .. } => Err(
            ApiError::bad_request("a download trigger or data request is not an eUICC package"),
        ),
    }
}

fn fqdn(text: &str) -> Result<String, ApiError> {
    host(text, "an SM-DP+ address")
}

/// `text` as a host name (with an optional `:port`), or the error saying
/// it is not `what`.
fn host(text: &str, what: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() || t.len() > 255 || t.contains(char::is_whitespace) || t.contains('/') {
        return Err(ApiError::bad_request(&format!(
            "`{text}` is not {what} (host[:port])"
        )));
    }
    Ok(t.to_owned())
}

/// An EimConfigurationData from the API's JSON.
pub fn eim_configuration(
    c: &EimConfigurationJson,
) -> Result<sgp32::EimConfigurationData, ApiError> {
    EimId::new(&c.eim_id).map_err(|e| ApiError::bad_request(&e.to_string()))?;
    let bytes = |text: &str, what: &str| {
        STANDARD
            .decode(text.trim())
            .map_err(|_| ApiError::bad_request(&format!("{what} is not base64")))
    };
    let key_data = match (&c.eim_public_key, &c.eim_certificate) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give eimPublicKey or eimCertificate, not both",
            ));
        }
        (Some(k), None) => Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
            decode_der(&bytes(k, "eimPublicKey")?).map_err(|e| {
                ApiError::bad_request(&format!("eimPublicKey is not a SubjectPublicKeyInfo: {e}"))
            })?,
        )),
        (None, Some(cert)) => Some(sgp32::EimConfigurationDataEimPublicKeyData::eimCertificate(
            decode_der(&bytes(cert, "eimCertificate")?).map_err(|e| {
                ApiError::bad_request(&format!("eimCertificate is not a certificate: {e}"))
            })?,
        )),
        (None, None) => None,
    };
    if let Some(counter) = c.counter_value {
        Counter::new(counter.into()).map_err(|e| ApiError::bad_request(&e.to_string()))?;
    }
    let eim_fqdn = c
        .eim_fqdn
        .as_deref()
        .map(|f| host(f, "an eIM FQDN"))
        .transpose()?;
    Ok(sgp32::EimConfigurationData::new(
        c.eim_id.clone(),
        eim_fqdn,
        None,
        c.counter_value.map(Integer::from),
        c.association_token.map(Integer::from),
        key_data,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// The view of a device record.
pub fn device_view(r: &DeviceRecord) -> DeviceView {
    DeviceView {
        eid: r.eid,
        eim_id: r.association.eim_id.as_str().to_owned(),
        counter: r.association.counter.get(),
        association_token: r.association.association_token,
        euicc_version: sgp_version(r.association.euicc_version),
        ipa_version: sgp_version(r.ipa_version),
        emulated: r.emulated,
        results_are: if r.emulated { "unsigned" } else { "verified" }.to_owned(),
        queue: r
            .queue
            .iter()
            .map(|i| {
                let (state, deliveries) = match i.state {
                    ItemState::Queued => ("queued", 0),
                    ItemState::Delivered { times, .. } => ("delivered", times),
                    ItemState::AwaitingResult { .. } => ("awaiting_result", 0),
                };
                ItemView {
                    id: i.id,
                    kind: kind(i.kind).to_owned(),
                    counter: i.counter.map(Counter::get),
                    transaction_id: i.transaction_id,
                    state: state.to_owned(),
                    deliveries,
                    created_at_ms: i.created_at.0,
                }
            })
            .collect(),
        profiles: ProfilesView {
            profiles: r.profiles.profiles.iter().map(profile_view).collect(),
            reported_at_ms: r.profiles.reported_at.map(|t| t.0),
            stale: r.profiles.stale,
        },
        last_poll: r.last_poll.as_ref().map(|p| PollView {
            at_ms: p.at.0,
            r_plmn: p.r_plmn.as_deref().map(hex),
            state_change_cause: p.state_change_cause,
            read_as: sgp_version(p.read_as),
        }),
        created_at_ms: r.created_at.0,
    }
}

fn kind(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Package => "package",
        ItemKind::DownloadTrigger => "download_trigger",
        ItemKind::DataRequest => "data_request",
        ItemKind::Rollback => "rollback",
    }
}

fn trust(t: Trust) -> &'static str {
    match t {
        Trust::Verified => "verified",
        Trust::Unsigned => "unsigned",
    }
}

fn outcome(o: &ItemOutcome) -> serde_json::Value {
    use serde_json::json;
    match o {
        ItemOutcome::Executed(codes) => json!({"outcome": "executed", "codes": codes}),
        ItemOutcome::PackageError(code) => json!({"outcome": "package_error", "code": code}),
        ItemOutcome::Rejected(code) => json!({"outcome": "rejected", "code": code}),
        ItemOutcome::Installed { ok, iccid } => json!({
            "outcome": "installed",
            "ok": ok,
            "iccid": iccid.as_ref().map(Iccid::as_str),
        }),
        ItemOutcome::DownloadFailed(reason) => {
            json!({"outcome": "download_failed", "reason": reason})
        }
        ItemOutcome::DataReported(error) => json!({"outcome": "data_reported", "error": error}),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a sanitization of a device and answers its report.
pub async fn sanitize<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
    request: &SanitizeRequest,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<SanitizeReportView, ApiError> {
    let options = SanitizeOptions {
        keep_provisioning: request.keep_provisioning_profiles,
    };
    eim.sanitize(eid, options, rng, now)
        .await
        .map_err(eim_error)?;
    sanitize_report(eim, eid).await
}

/// The report of a device's last sanitization.
pub async fn sanitize_report<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
) -> Result<SanitizeReportView, ApiError> {
    let report = eim.sanitize_report(eid).await.map_err(eim_error)?;
    let record = eim.device(eid).await.map_err(eim_error)?;
    Ok(report_view(
        eid,
        record.association.eim_id.as_str(),
        &report,
    ))
}

/// Orders the release of a sanitized device (deleteEim of this eIM) and
/// answers the report.
pub async fn release<S: EimStore>(
    eim: &Eim<S>,
    eid: &Eid,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<SanitizeReportView, ApiError> {
    eim.release(eid, rng, now).await.map_err(eim_error)?;
    sanitize_report(eim, eid).await
}

fn trust_name(t: Option<Trust>) -> Option<String> {
    t.map(|t| {
        match t {
            Trust::Verified => "verified",
            Trust::Unsigned => "unsigned",
        }
        .to_owned()
    })
}

/// What the eIM cannot or does not wipe.
const UNTOUCHED: [&str; 3] = [
    "the eUICC's identity: EID, certificates and keys (they make the device re-associable)",
    "device-local state no eUICC package reaches: the default SM-DP+ address, the immediate-enable configuration and preloaded test profiles (the IPA's EuiccMemoryReset: `ferrosim ipa memory-reset`)",
    "this eIM's history of the device: its stored results and notifications",
];

/// The API view of a sanitization report.
pub fn report_view(eid: &Eid, eim_id: &str, r: &SanitizeReport) -> SanitizeReportView {
    let s = &r.sanitization;
    let operations = r
        .steps
        .iter()
        .map(|o| {
            let (operation, iccid) = match &o.step {
                WipeStep::UnsetFallback => ("unset-fallback", None),
                WipeStep::Disable(i) => ("disable", Some(i.clone())),
                WipeStep::Delete(i) => ("delete", Some(i.clone())),
                WipeStep::ListProfiles => ("list-profiles", None),
            };
            WipeOperationView {
                operation: operation.to_owned(),
                iccid,
                code: o.code,
            }
        })
        .collect();
    let done = |want: fn(&WipeStep) -> Option<&Iccid>| -> Vec<Iccid> {
        r.steps
            .iter()
            .filter(|o| o.code == Some(0))
            .filter_map(|o| want(&o.step).cloned())
            .collect()
    };
    let wiped = WipedView {
        profiles_deleted: done(|s| match s {
            WipeStep::Delete(i) => Some(i),
            _ => None,
        }),
        profiles_disabled: done(|s| match s {
            WipeStep::Disable(i) => Some(i),
            _ => None,
        }),
        fallback_unset: r
            .steps
            .iter()
            .any(|o| o.step == WipeStep::UnsetFallback && o.code == Some(0)),
        eim_configuration: match r.release_code {
            Some(0) => Some("deleted".to_owned()),
            Some(2) => Some("deleted-last-eim".to_owned()),
            _ => None,
        },
        queue_items_withdrawn: s.withdrawn.clone(),
    };
    let kept = KeptView {
        profiles: r
            .remaining_profiles
            .as_ref()
            .map(|list| list.iter().map(profile_view).collect()),
        other_eims: r
            .eims
            .as_ref()
            .map(|ids| ids.iter().filter(|id| *id != eim_id).cloned().collect()),
        untouched: UNTOUCHED.iter().map(|t| (*t).to_owned()).collect(),
    };
    SanitizeReportView {
        eid: *eid,
        verdict: r.verdict.name().to_owned(),
        reasons: match &r.verdict {
            Verdict::NotClean(reasons) => reasons.clone(),
            _ => Vec::new(),
        },
        started_at_ms: s.started_at.0,
        keep_provisioning_profiles: s.keep_provisioning,
        wipe_item: s.wipe_item,
        eim_list_item: s.eim_list_item,
        release_item: s.release.as_ref().map(|r| r.item_id),
        release_ordered_at_ms: s.release.as_ref().map(|r| r.ordered_at.0),
        reassociated_at_ms: s.reassociated_at.map(|t| t.0),
        operations,
        wiped,
        kept,
        signatures: SanitizeTrustView {
            wipe: trust_name(r.wipe_trust),
            eim_list: trust_name(r.eims_trust),
            release: trust_name(r.release_trust),
        },
    }
}

fn profile_view(p: &ferrosim_eim::ProfileEntry) -> ProfileView {
    ProfileView {
        iccid: p.iccid.clone(),
        enabled: p.enabled,
        fallback: p.fallback,
        class: p.class,
        name: p.name.clone(),
        service_provider: p.service_provider.clone(),
    }
}
