//! Sanitized reprovisioning: a device leaving the fleet or changing hands is
//! wiped through the eIM, the wipe verified from the eUICC's signed results,
//! then released so that it can be associated again and provisioned afresh.
//!
//! What the eIM can order is limited to eUICC packages (SGP.32 has no ESipa
//! message for ES10b EuiccMemoryReset, which only the IPA in the device can
//! send). So:
//!
//! 1. [`start`] withdraws what was queued and not delivered, and queues one
//!    PSMO package: unsetFallbackAttribute (v1.2, when a profile carries it),
//!    a disable for each enabled profile, a delete for each profile, and a
//!    closing listProfileInfo — one result signed by the eUICC says what was
//!    deleted and what is left; then an eCO listEim (which eIMs the eUICC
//!    still knows). Provisioning profiles (class 1) can be kept.
//! 2. [`report`] reads those results: per operation its code, what the
//!    eUICC lists afterwards, whether the signatures were verified, and a
//!    [`Verdict`].
//! 3. [`release`], only after a clean report, queues the eCO deleteEim of
//!    this eIM: its result (`ok`, or `lastEimDeleted` when the eUICC has no
//!    eIM left, the remote counterpart of EuiccMemoryReset's
//!    resetEimConfigData) releases the device; nothing more is queued for it,
//!    and [`super::associate::reassociate`] accepts a new association.
//!
//! The eIM works from the profiles it last knew of: a profile it did not know
//! shows in the closing list, the report is not clean, and a second
//! sanitization (which starts from that list) deletes it.

use ferrosim_asn1::esipa::{ReceivedPackageResult, Sgp32Version};
use ferrosim_asn1::sgp32;
use ferrosim_crypto::KeySource;
use rand::CryptoRng;

use super::Step;
use super::associate::update;
use super::enqueue::{open_for_work, sign_and_push};
use super::profiles;
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::package::{EimOperation, Operation, PackageContent};
pub use crate::record::Release;
use crate::record::{
    DeviceRecord, ItemOutcome, ItemState, ProfileEntry, ResultRecord, Sanitization, Trust, WipeStep,
};
use crate::store::Versioned;

/// Profile class of provisioning profiles in ProfileInfo.
pub const PROVISIONING_CLASS: i64 = 1;

/// What the operator chose for a sanitization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SanitizeOptions {
    /// Keep provisioning profiles (class 1): the device's bootstrap
    /// connectivity for its next owner.
    pub keep_provisioning: bool,
}

/// Starts a sanitization (see the module documentation). Refused for a
/// device being released, and while delivered items await their results.
pub fn start(
    device: &Versioned<DeviceRecord>,
    options: SanitizeOptions,
    key: &dyn KeySource,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Step<Sanitization>, EimError> {
    let mut record = device.record.clone();
    open_for_work(&record)?;
    let delivered = record
        .queue
        .iter()
        .filter(|i| i.state != ItemState::Queued)
        .count();
    if delivered > 0 {
        return Err(EimError::Busy(delivered));
    }
    let withdrawn = record.queue.drain(..).map(|i| i.id).collect();
    let known = record.profiles.profiles.clone();
    let wipe_steps = wipe_steps(&known, options, record.association.euicc_version);
    let operations = wipe_steps
        .iter()
        .map(|s| match s {
            WipeStep::UnsetFallback => Operation::UnsetFallback,
            WipeStep::Disable(iccid) => Operation::Disable {
                iccid: iccid.clone(),
            },
            WipeStep::Delete(iccid) => Operation::Delete {
                iccid: iccid.clone(),
            },
            WipeStep::ListProfiles => Operation::ListProfiles,
        })
        .collect();
    let key_rng = &mut *rng;
    let wipe = sign_and_push(
        &mut record,
        &PackageContent::Psmos(operations),
        key,
        key_rng,
        now,
    )?;
    let eims = sign_and_push(
        &mut record,
        &PackageContent::Ecos(vec![EimOperation::ListEim]),
        key,
        rng,
        now,
    )?;
    let sanitization = Sanitization {
        started_at: now,
        withdrawn,
        known_profiles: known,
        keep_provisioning: options.keep_provisioning,
        wipe_item: wipe.item_id,
        wipe_steps,
        eim_list_item: eims.item_id,
        release: None,
        reassociated_at: None,
    };
    record.sanitization = Some(sanitization.clone());
    Ok(Step::new(update(device, record), sanitization))
}

/// The wipe package's operations for the profiles the eIM knows of.
fn wipe_steps(
    known: &[ProfileEntry],
    options: SanitizeOptions,
    version: Sgp32Version,
) -> Vec<WipeStep> {
    let targets: Vec<&ProfileEntry> = known.iter().filter(|p| !kept(p, options)).collect();
    let mut steps = Vec::new();
    if version == Sgp32Version::V1_2 && known.iter().any(|p| p.fallback) {
        steps.push(WipeStep::UnsetFallback);
    }
    steps.extend(
        targets
            .iter()
            .filter(|p| p.enabled)
            .map(|p| WipeStep::Disable(p.iccid.clone())),
    );
    steps.extend(targets.iter().map(|p| WipeStep::Delete(p.iccid.clone())));
    steps.push(WipeStep::ListProfiles);
    steps
}

fn kept(profile: &ProfileEntry, options: SanitizeOptions) -> bool {
    options.keep_provisioning && profile.class == Some(PROVISIONING_CLASS)
}

/// Orders the release of a sanitized device: the eCO deleteEim of this eIM.
/// Only after a clean report; once.
pub fn release(
    device: &Versioned<DeviceRecord>,
    results: &[ResultRecord],
    key: &dyn KeySource,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> Result<Step<Release>, EimError> {
    let mut record = device.record.clone();
    let report = report(&record, results).ok_or(EimError::NotSanitized(record.eid))?;
    match &report.verdict {
        Verdict::Clean => {}
        Verdict::ReleaseOrdered | Verdict::Released => return Err(EimError::Released(record.eid)),
        other => return Err(EimError::NotClean(other.describe())),
    }
    let eim_id = record.association.eim_id.clone();
    let queued = sign_and_push(
        &mut record,
        &PackageContent::Ecos(vec![EimOperation::DeleteEim(eim_id)]),
        key,
        rng,
        now,
    )?;
    let release = Release {
        item_id: queued.item_id,
        ordered_at: now,
    };
    if let Some(s) = record.sanitization.as_mut() {
        s.release = Some(release.clone());
    }
    Ok(Step::new(update(device, record), release))
}

/// Where a sanitization is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Results of its packages have not all arrived.
    AwaitingResults,
    /// The eUICC's results show every targeted profile gone and nothing left
    /// but what was to be kept: the device may be released.
    Clean,
    /// Something was not wiped (each reason says what).
    NotClean(Vec<String>),
    /// The release (deleteEim) was ordered; its result has not arrived.
    ReleaseOrdered,
    /// The eUICC deleted this eIM's configuration: the device can be
    /// associated again (with this eIM or another).
    Released,
}

impl Verdict {
    /// A short name (`awaiting-results`, `clean`, `not-clean`,
    /// `release-ordered`, `released`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwaitingResults => "awaiting-results",
            Self::Clean => "clean",
            Self::NotClean(_) => "not-clean",
            Self::ReleaseOrdered => "release-ordered",
            Self::Released => "released",
        }
    }

    /// The name with the reasons, for errors.
    pub fn describe(&self) -> String {
        match self {
            Self::NotClean(reasons) => reasons.join("; "),
            Self::AwaitingResults => "its results have not all arrived".to_owned(),
            other => other.name().to_owned(),
        }
    }
}

/// One wipe operation and what the eUICC answered (`None`: no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The operation.
    pub step: WipeStep,
    /// Its result code (`0` ok).
    pub code: Option<i64>,
}

/// What a sanitization did, read from the eUICC's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanitizeReport {
    /// The sanitization as ordered.
    pub sanitization: Sanitization,
    /// The wipe package's operations with their codes (empty codes until its
    /// result arrives).
    pub steps: Vec<StepOutcome>,
    /// Whether the wipe result's eUICC signature was verified (`None`
    /// before it arrives).
    pub wipe_trust: Option<Trust>,
    /// When the wipe result arrived.
    pub wipe_received_at: Option<Timestamp>,
    /// The profiles the eUICC listed after the deletes (`None` before).
    pub remaining_profiles: Option<Vec<ProfileEntry>>,
    /// The eIMs the eUICC still knows (`None` before the listEim result).
    pub eims: Option<Vec<String>>,
    /// The trust of the listEim result.
    pub eims_trust: Option<Trust>,
    /// The deleteEim result code, once it arrived.
    pub release_code: Option<i64>,
    /// The trust of the deleteEim result.
    pub release_trust: Option<Trust>,
    /// Where it is.
    pub verdict: Verdict,
}

/// The report of the device's last sanitization (`None` if it never had
/// one), from its record and its stored results.
pub fn report(record: &DeviceRecord, results: &[ResultRecord]) -> Option<SanitizeReport> {
    let s = record.sanitization.clone()?;
    let mut reasons = Vec::new();
    let mut waiting = false;
    let mut item = |id: u64, what: &str| -> Option<&ResultRecord> {
        let found = results.iter().find(|r| r.item_id == id);
        if found.is_none() {
            if record.queue.iter().any(|i| i.id == id) {
                waiting = true;
            } else {
                reasons.push(format!(
                    "the {what} (item {id}) was withdrawn before it ran"
                ));
            }
        }
        found
    };
    let wipe = item(s.wipe_item, "wipe package");
    let eims = item(s.eim_list_item, "listEim package");
    let release = s
        .release
        .as_ref()
        .map(|r| item(r.item_id, "deleteEim package"));

    let mut steps: Vec<StepOutcome> = s
        .wipe_steps
        .iter()
        .map(|step| StepOutcome {
            step: step.clone(),
            code: None,
        })
        .collect();
    let mut remaining = None;
    if let Some(r) = wipe {
        match executed(r) {
            Ok(data) => {
                for (outcome, result) in steps.iter_mut().zip(&data) {
                    outcome.code = code_of(result);
                    if let (
                        WipeStep::ListProfiles,
                        sgp32::EuiccResultData::listProfileInfoResult(l),
                    ) = (&outcome.step, result)
                    {
                        remaining = listed(l);
                    }
                }
                for o in &steps {
                    match (&o.step, o.code) {
                        (WipeStep::ListProfiles, _) if remaining.is_none() => reasons.push(
                            "the eUICC did not list its profiles after the deletes".to_owned(),
                        ),
                        (WipeStep::ListProfiles, _) | (_, Some(0)) => {}
                        (step, code) => reasons.push(format!(
                            "{} answered {}",
                            step_text(step),
                            code.map_or("nothing".to_owned(), |c| format!("code {c}"))
                        )),
                    }
                }
                if let Some(left) = &remaining {
                    for p in left {
                        if !kept(p, options_of(&s)) {
                            reasons.push(format!(
                                "profile {} is still on the eUICC",
                                p.iccid.as_str()
                            ));
                        }
                    }
                }
            }
            Err(why) => reasons.push(format!("the wipe package {why}")),
        }
    }
    let mut eim_ids = None;
    if let Some(r) = eims {
        match executed(r) {
            Ok(data) => match data.first() {
                Some(sgp32::EuiccResultData::listEimResult(sgp32::ListEimResult::eimIdList(l))) => {
                    eim_ids = Some(l.iter().map(|e| e.eim_id.clone()).collect());
                }
                _ => reasons.push("the eUICC did not list its eIMs".to_owned()),
            },
            Err(why) => reasons.push(format!("the listEim package {why}")),
        }
    }
    let mut release_code = None;
    if let Some(Some(r)) = release {
        match executed(r).map(|data| data.first().and_then(code_of)) {
            Ok(Some(c)) => release_code = Some(c),
            Ok(None) => reasons.push("the eUICC gave deleteEim no result code".to_owned()),
            Err(why) => reasons.push(format!("the deleteEim package {why}")),
        }
        if let Some(c) = release_code.filter(|c| !matches!(c, 0 | 2)) {
            reasons.push(format!("deleteEim answered code {c}"));
        }
    }
    let verdict = if !reasons.is_empty() {
        Verdict::NotClean(reasons)
    } else if waiting && release.is_none() {
        Verdict::AwaitingResults
    } else if release.is_none() {
        Verdict::Clean
    } else if release_code.is_some() {
        Verdict::Released
    } else {
        Verdict::ReleaseOrdered
    };
    Some(SanitizeReport {
        steps,
        wipe_trust: wipe.and_then(|r| r.trust),
        wipe_received_at: wipe.map(|r| r.received_at),
        remaining_profiles: remaining,
        eims: eim_ids,
        eims_trust: eims.and_then(|r| r.trust),
        release_code,
        release_trust: release.flatten().and_then(|r| r.trust),
        verdict,
        sanitization: s,
    })
}

fn options_of(s: &Sanitization) -> SanitizeOptions {
    SanitizeOptions {
        keep_provisioning: s.keep_provisioning,
    }
}

/// The operation results of an executed package, or why there are none.
fn executed(r: &ResultRecord) -> Result<Vec<sgp32::EuiccResultData>, String> {
    match &r.outcome {
        ItemOutcome::Executed(_) => {}
        ItemOutcome::PackageError(c) => return Err(format!("was refused by the eUICC (code {c})")),
        ItemOutcome::Rejected(c) => return Err(format!("was rejected by the IPA (code {c})")),
        other => return Err(format!("ended unexpectedly: {other:?}")),
    }
    let value = ReceivedPackageResult::new(&r.der, r.read_as)
        .and_then(|p| p.value())
        .map_err(|e| format!("has a stored result that does not decode: {e}"))?;
    match value {
        sgp32::EuiccPackageResult::euiccPackageResultSigned(s) => {
            Ok(s.euicc_package_result_data_signed.euicc_result)
        }
        _ => Err("has no executed result".to_owned()),
    }
}

fn code_of(result: &sgp32::EuiccResultData) -> Option<i64> {
    use sgp32::EuiccResultData as R;
    let code = match result {
        R::disableResult(c) => &c.0,
        R::deleteResult(c) => &c.0,
        R::unsetFallbackAttributeResult(c) => &c.0,
        R::deleteEimResult(c) => &c.0,
        R::listProfileInfoResult(sgp32::ProfileInfoListResponse::profileInfoListError(c)) => &c.0,
        R::processingTerminated(c) => c,
        _ => return None,
    };
    i64::try_from(code.clone()).ok()
}

fn listed(list: &sgp32::ProfileInfoListResponse) -> Option<Vec<ProfileEntry>> {
    match list {
        sgp32::ProfileInfoListResponse::profileInfoListOk(infos) => {
            Some(infos.iter().filter_map(profiles::listed).collect())
        }
        sgp32::ProfileInfoListResponse::profileInfoListError(_) => None,
    }
}

/// `disable of <ICCID>`, ...
pub fn step_text(step: &WipeStep) -> String {
    match step {
        WipeStep::UnsetFallback => "unsetFallbackAttribute".to_owned(),
        WipeStep::Disable(i) => format!("disable of {}", i.as_str()),
        WipeStep::Delete(i) => format!("delete of {}", i.as_str()),
        WipeStep::ListProfiles => "listProfileInfo".to_owned(),
    }
}
