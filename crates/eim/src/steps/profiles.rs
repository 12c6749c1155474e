//! Keeping a device's profiles as last reported: from the results of the
//! packages it ran and from the profile notifications of its eUICC.

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::values::NotificationOperation;
use ferrosim_asn1::{decode_der, rsp, sgp32};

use crate::ids::Iccid;
use crate::ids::Timestamp;
use crate::record::{ProfileEntry, ProfileSnapshot};

/// A successful enable with rollbackFlag: the profile it enabled and the
/// one enabled just before it, as the eIM knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RollbackEnable {
    /// The profile enabled.
    pub enabled: Iccid,
    /// The profile enabled before it.
    pub previous: Option<Iccid>,
}

/// Applies the results of a package (its request as delivered, and the
/// eUICC's results in the order of its operations); returns the last
/// successful enable with rollbackFlag among them.
pub(super) fn apply_results(
    snapshot: &mut ProfileSnapshot,
    package: &[u8],
    results: &[sgp32::EuiccResultData],
    now: Timestamp,
) -> Option<RollbackEnable> {
    let Ok(request) = decode_der::<sgp32::EuiccPackageRequest>(package) else {
        return None;
    };
    let sgp32::EuiccPackage::psmoList(operations) = request.euicc_package_signed.euicc_package
    else {
        return None;
    };
    use sgp32::EuiccResultData as R;
    use sgp32::Psmo as P;
    let mut rollback = None;
    for (operation, result) in operations.iter().zip(results) {
        match (operation, result) {
            (P::enable(e), R::enableResult(code)) if ok(&code.0) => {
                if let Some(iccid) = iccid(&e.iccid) {
                    let previous = enabled(snapshot).filter(|p| *p != iccid);
                    for p in &mut snapshot.profiles {
                        p.enabled = false;
                    }
                    entry(snapshot, iccid.clone()).enabled = true;
                    rollback = e.rollback_flag.is_some().then_some(RollbackEnable {
                        enabled: iccid,
                        previous,
                    });
                }
            }
            (P::disable(d), R::disableResult(code)) if ok(&code.0) => {
                if let Some(iccid) = iccid(&d.iccid) {
                    entry(snapshot, iccid).enabled = false;
                }
            }
            (P::delete(d), R::deleteResult(code)) if ok(&code.0) => {
                if let Some(iccid) = iccid(&d.iccid) {
                    snapshot.profiles.retain(|p| p.iccid != iccid);
                }
            }
            (P::setFallbackAttribute(f), R::setFallbackAttributeResult(code)) if ok(&code.0) => {
                if let Some(iccid) = iccid(&f.iccid) {
                    for p in &mut snapshot.profiles {
                        p.fallback = false;
                    }
                    entry(snapshot, iccid).fallback = true;
                }
            }
            (P::unsetFallbackAttribute(_), R::unsetFallbackAttributeResult(code)) if ok(&code.0) => {
                for p in &mut snapshot.profiles {
                    p.fallback = false;
                }
            }
            (
                P::listProfileInfo(_),
                R::listProfileInfoResult(sgp32::ProfileInfoListResponse::profileInfoListOk(list)),
            ) => {
                snapshot.profiles = list.iter().filter_map(listed).collect();
                snapshot.stale = false;
            }
            _ => continue,
        }
        snapshot.reported_at = Some(now);
    }
    rollback
}

/// Applies a ProfileRollback the eUICC confirmed: `enabled` (what the
/// enable with rollbackFlag enabled) is disabled and `previous`, if any,
/// enabled again.
pub(super) fn apply_rollback(
    snapshot: &mut ProfileSnapshot,
    enabled: &Iccid,
    previous: Option<&Iccid>,
    now: Timestamp,
) {
    for p in &mut snapshot.profiles {
        p.enabled = false;
    }
    entry(snapshot, enabled.clone());
    if let Some(previous) = previous {
        entry(snapshot, previous.clone()).enabled = true;
    }
    snapshot.reported_at = Some(now);
}

/// The profile enabled, as the eIM knows.
fn enabled(snapshot: &ProfileSnapshot) -> Option<Iccid> {
    snapshot
        .profiles
        .iter()
        .find(|p| p.enabled)
        .map(|p| p.iccid.clone())
}

/// Applies a profile notification; returns its sequence number.
pub(super) fn apply_notification(
    snapshot: &mut ProfileSnapshot,
    notification: &sgp32::PendingNotification,
    now: Timestamp,
) -> Option<i64> {
    use sgp32::PendingNotification as N;
    let (metadata, installed_ok) = match notification {
        N::otherSignedNotification(n) => (&n.tbs_other_notification, false),
        N::compactOtherSignedNotification(n) => (&n.tbs_other_notification, false),
        N::profileInstallationResult(r) => {
            let data = &r.profile_installation_result_data;
            let ok = matches!(
                data.final_result,
                rsp::ProfileInstallationResultDataFinalResult::successResult(_)
            );
            (&data.notification_metadata, ok)
        }
        N::compactProfileInstallationResult(r) => {
            return i64::try_from(
                r.compact_profile_installation_result_data
                    .seq_number
                    .clone(),
            )
            .ok();
        }
    };
    let seq = i64::try_from(metadata.seq_number.clone()).ok();
    let operation = NotificationOperation::of_event(&metadata.profile_management_operation.0);
    let Some(iccid) = metadata.iccid.as_ref().and_then(iccid) else {
        return seq;
    };
    match operation {
        Some(NotificationOperation::Install) if installed_ok => {
            entry(snapshot, iccid);
        }
        Some(NotificationOperation::Enable) => {
            for p in &mut snapshot.profiles {
                p.enabled = false;
            }
            entry(snapshot, iccid).enabled = true;
        }
        Some(NotificationOperation::Disable) => entry(snapshot, iccid).enabled = false,
        Some(NotificationOperation::Delete) => snapshot.profiles.retain(|p| p.iccid != iccid),
        _ => return seq,
    }
    snapshot.reported_at = Some(now);
    seq
}

/// Records a profile a download trigger installed.
pub(super) fn apply_install(snapshot: &mut ProfileSnapshot, installed: Iccid, now: Timestamp) {
    entry(snapshot, installed);
    snapshot.reported_at = Some(now);
}

pub(super) fn iccid(value: &rsp::Iccid) -> Option<Iccid> {
    Iccid::from_bcd(value.0.as_slice()).ok()
}

fn ok(code: &Integer) -> bool {
    *code == Integer::from(0)
}

fn entry(snapshot: &mut ProfileSnapshot, iccid: Iccid) -> &mut ProfileEntry {
    let position = match snapshot.profiles.iter().position(|p| p.iccid == iccid) {
        Some(i) => i,
        None => {
            snapshot.profiles.push(ProfileEntry {
                iccid,
                enabled: false,
                fallback: false,
                class: None,
                name: None,
                service_provider: None,
            });
            snapshot.profiles.len() - 1
        }
    };
    &mut snapshot.profiles[position]
}

/// A listed profile as the eIM keeps it.
pub(super) fn listed(info: &sgp32::ProfileInfo) -> Option<ProfileEntry> {
    Some(ProfileEntry {
        iccid: iccid(info.iccid.as_ref()?)?,
        enabled: info
            .profile_state
            .as_ref()
            .is_some_and(|s| s.0 == Integer::from(1)),
        fallback: info.fallback_attribute,
        class: info
            .profile_class
            .as_ref()
            .and_then(|c| i64::try_from(c.0.clone()).ok()),
        name: info.profile_name.clone(),
        service_provider: info.service_provider_name.clone(),
    })
}
