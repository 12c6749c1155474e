//! SGP.32 v1.2 profile switching on the virtual eUICC: ProfileRollback
//! (`BF58`), the Fallback Mechanism (ExecuteFallbackMechanism `BF5D`,
//! ReturnFromFallback `BF5E`), ImmediateEnable (`BF5A`), and the PSMOs
//! that prepare them (enable with rollbackFlag, setFallbackAttribute,
//! unsetFallbackAttribute, configureImmediateEnable).
//!
//! The rules this eUICC applies:
//!
//! - **Rollback.** An enable PSMO with rollbackFlag that succeeds records
//!   the profile enabled before it. ProfileRollback goes back to it (or
//!   disables the new profile when none was enabled) and answers with a
//!   signed EuiccPackageResult (`rollbackResult` ok) carrying the enabling
//!   package's eimId, counter and transaction id, so the eIM learns of it.
//!   The rollback stays possible only until the eIM is reached again over
//!   the new profile — the next eUICC package accepted — or until any other
//!   profile operation, a memory reset, or the rollback itself; after that,
//!   and without an enable with rollbackFlag, ProfileRollback answers
//!   `rollbackNotAllowed` (1). Deleting, in the same package, the profile a
//!   rollback would return to answers `rollbackNotAvailable` (20).
//! - **Fallback.** At most one profile carries the fallback attribute, and
//!   only one whose metadata allows it (`fallbackAllowed` `9F67` TRUE in
//!   its StoreMetadata): setFallbackAttribute answers `iccidOrAidNotFound`
//!   (1), `fallbackNotAllowed` (2) when the metadata does not allow it or
//!   another profile already carries the attribute (the eIM unsets it
//!   first: SGP.32 has no code of its own for this case), and
//!   `fallbackProfileEnabled` (3) while the Fallback Mechanism is in use.
//!   unsetFallbackAttribute answers `noFallbackAttribute` (2) and
//!   `fallbackProfileEnabled` (3) the same way. ExecuteFallbackMechanism
//!   enables the fallback profile (`fallbackNotAvailable` 6 without one,
//!   `profileNotInDisabledState` 2 when it is already enabled) and
//!   remembers the profile it replaced; ReturnFromFallback enables that
//!   one again (`fallbackNotAvailable` 6 without attribute, `commandError`
//!   7 when the mechanism is not in use). The PSMO delete of the fallback
//!   profile answers `returnFallbackProfile` (21). Any other profile
//!   operation ends the Fallback Mechanism's "in use".
//! - **Immediate enable.** configureImmediateEnable records whether the
//!   IPA may enable a just-downloaded profile by itself; ImmediateEnable
//!   then enables the profile installed last (`immediateEnableNotAvailable`
//!   1 when not allowed, `noSessionContext` 4 when no profile was installed
//!   since the last profile operation).

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, rsp, sgp32};

use super::profiles::ProfileId;
use super::{Es10Reply, Isdr, decode};
use ferrosim_ids::{Iccid, TransactionId};

use crate::codes::ProfileResult;
use crate::profile::ProfileState;
use crate::state::{FallbackPoint, ImmediateEnableConfig, RollbackPoint, Switching};

/// `fallbackAllowed` in StoreMetadata / ProfileInfo.
const TAG_FALLBACK_ALLOWED: u32 = 0x9F67;

/// Result codes shared by the switching functions.
mod codes {
    pub const OK: i64 = 0;
    pub const NOT_FOUND: i64 = 1;
    pub const ROLLBACK_NOT_ALLOWED: i64 = 1;
    pub const IMMEDIATE_ENABLE_NOT_AVAILABLE: i64 = 1;
    pub const FALLBACK_NOT_ALLOWED: i64 = 2;
    pub const NO_FALLBACK_ATTRIBUTE: i64 = 2;
    pub const PROFILE_NOT_IN_DISABLED_STATE: i64 = 2;
    pub const FALLBACK_PROFILE_ENABLED: i64 = 3;
    pub const NO_SESSION_CONTEXT: i64 = 4;
    pub const FALLBACK_NOT_AVAILABLE: i64 = 6;
    pub const COMMAND_ERROR: i64 = 7;
    pub const ROLLBACK_NOT_AVAILABLE: i64 = 20;
    pub const RETURN_FALLBACK_PROFILE: i64 = 21;
    pub const UNDEFINED_ERROR: i64 = 127;
}

/// The package an enable with rollbackFlag came in (what the rollback's
/// result names).
pub(super) struct PackageContext<'a> {
    pub eim_id: &'a str,
    pub counter: u32,
    pub transaction_id: Option<TransactionId>,
}

impl Isdr {
    /// The switching state, created when first needed.
    fn switching_mut(&mut self) -> &mut Switching {
        self.state.switching.get_or_insert_with(Box::default)
    }

    fn switching(&self) -> Option<&Switching> {
        self.state.switching.as_deref()
    }

    /// Drops the switching state when it holds nothing.
    fn tidy_switching(&mut self) {
        if self.switching().is_some_and(Switching::is_empty) {
            self.state.switching = None;
        }
    }

    /// A profile changed state or was deleted: a pending rollback, the
    /// Fallback Mechanism's "in use" and a pending immediate enable end
    /// (the operations that set them do so after their profile changes).
    pub(super) fn profile_switched(&mut self, deleted: Option<&Iccid>) {
        let Some(s) = self.state.switching.as_deref_mut() else {
            return;
        };
        s.rollback = None;
        s.in_fallback = None;
        s.just_installed = None;
        if deleted.is_some() && s.fallback.as_ref() == deleted {
            s.fallback = None;
        }
        self.tidy_switching();
    }

    /// The eIM was reached again (a package accepted): no more rollback.
    pub(super) fn end_rollback(&mut self) {
        if let Some(s) = self.state.switching.as_deref_mut()
            && s.rollback.take().is_some()
        {
            tracing::info!("rollback no longer possible: the eIM was reached");
            self.tidy_switching();
        }
    }

    /// A profile was installed: what ImmediateEnable would enable (IoT
    /// eUICCs only; a consumer eUICC keeps nothing).
    pub(super) fn note_installed(&mut self, iccid: &Iccid) {
        if !self.state.eims.is_empty() {
            self.switching_mut().just_installed = Some(iccid.clone());
        }
    }

    /// The ICCID of the enabled profile.
    fn enabled_iccid(&self) -> Option<Iccid> {
        self.state.enabled_profile().map(|p| p.iccid.clone())
    }

    /// PSMO enable, with rollbackFlag recording the rollback point.
    pub(super) fn psmo_enable(
        &mut self,
        iccid: &[u8; 10],
        rollback: bool,
        package: &PackageContext<'_>,
    ) -> ProfileResult {
        let previous = self.enabled_iccid();
        let result = self.enable(&ProfileId::Iccid(iccid));
        if rollback && result == ProfileResult::Ok {
            let Some(enabled) = self.enabled_iccid() else {
                return result;
            };
            tracing::info!(%enabled, ?previous, "enabled with rollback granted");
            self.switching_mut().rollback = Some(RollbackPoint {
                enabled,
                previous,
                eim_id: package.eim_id.to_owned(),
                counter: package.counter,
                transaction_id: package.transaction_id.clone(),
            });
            self.changed();
        }
        result
    }

    /// PSMO delete, refusing the fallback profile and the profile a
    /// pending rollback returns to.
    pub(super) fn psmo_delete(&mut self, iccid: &[u8; 10]) -> Integer {
        let digits = self.iccid_digits(iccid);
        if let (Some(s), Some(digits)) = (self.switching(), digits.as_ref()) {
            if s.fallback.as_ref() == Some(digits) {
                return Integer::from(codes::RETURN_FALLBACK_PROFILE);
            }
            if s.rollback
                .as_ref()
                .is_some_and(|r| r.previous.as_ref() == Some(digits))
            {
                return Integer::from(codes::ROLLBACK_NOT_AVAILABLE);
            }
        }
        Integer::from(self.delete(&ProfileId::Iccid(iccid)).code())
    }

    /// PSMO setFallbackAttribute.
    pub(super) fn set_fallback_attribute(&mut self, iccid: &[u8; 10]) -> i64 {
        let Some(digits) = self.iccid_digits(iccid) else {
            return codes::NOT_FOUND;
        };
        let Some(profile) = self.state.profile(&digits) else {
            return codes::NOT_FOUND;
        };
        if self.switching().is_some_and(|s| s.in_fallback.is_some()) {
            return codes::FALLBACK_PROFILE_ENABLED;
        }
        if !fallback_allowed(&profile.metadata_der) {
            tracing::warn!(iccid = %digits, "fallback attribute refused: not allowed by the profile's metadata");
            return codes::FALLBACK_NOT_ALLOWED;
        }
        match self.switching().and_then(|s| s.fallback.as_ref()) {
            Some(current) if *current == digits => codes::OK,
            Some(current) => {
                tracing::warn!(iccid = %digits, %current, "fallback attribute refused: another profile has it");
                codes::FALLBACK_NOT_ALLOWED
            }
            None => {
                tracing::info!(iccid = %digits, "fallback attribute set");
                self.switching_mut().fallback = Some(digits);
                self.changed();
                codes::OK
            }
        }
    }

    /// PSMO unsetFallbackAttribute.
    pub(super) fn unset_fallback_attribute(&mut self) -> i64 {
        let Some(s) = self.switching().filter(|s| s.fallback.is_some()) else {
            return codes::NO_FALLBACK_ATTRIBUTE;
        };
        if s.in_fallback.is_some() {
            return codes::FALLBACK_PROFILE_ENABLED;
        }
        self.switching_mut().fallback = None;
        self.tidy_switching();
        self.changed();
        tracing::info!("fallback attribute unset");
        codes::OK
    }

    /// PSMO configureImmediateEnable.
    pub(super) fn configure_immediate_enable(
        &mut self,
        request: &sgp32::PsmoConfigureImmediateEnable,
    ) -> i64 {
        let config = ImmediateEnableConfig {
            allowed: request.immediate_enable_flag.is_some(),
            default_smdp_address: request.default_smdp_address.clone(),
        };
        tracing::info!(allowed = config.allowed, "immediate enable configured");
        self.switching_mut().immediate_enable = Some(config);
        self.changed();
        codes::OK
    }

    /// Forgets the immediate-enable configuration (EuiccMemoryReset);
    /// whether there was one.
    pub(super) fn reset_immediate_enable(&mut self) -> bool {
        let had = self
            .state
            .switching
            .as_deref_mut()
            .and_then(|s| s.immediate_enable.take())
            .is_some();
        if had {
            self.tidy_switching();
            self.changed();
        }
        had
    }

    /// Forgets the fallback attribute and rollback point (EuiccMemoryReset
    /// of profiles): nothing refers to deleted profiles.
    pub(super) fn reset_switching_profiles(&mut self) {
        if let Some(s) = self.state.switching.as_deref_mut() {
            let keep: Vec<Iccid> = self
                .state
                .profiles
                .iter()
                .map(|p| p.iccid.clone())
                .collect();
            if s.fallback.as_ref().is_some_and(|f| !keep.contains(f)) {
                s.fallback = None;
            }
            s.rollback = None;
            s.in_fallback = None;
            s.just_installed = None;
            self.tidy_switching();
        }
    }

    /// ES10b ProfileRollback.
    pub(super) fn profile_rollback(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = decode::<sgp32::ProfileRollbackRequest>(cmd) {
            return e;
        }
        let answer = |code: i64, result: Option<sgp32::EuiccPackageResult>| {
            Es10Reply::encode(&sgp32::ProfileRollbackResponse::new(
                Integer::from(code),
                result,
            ))
        };
        let point = self.switching().and_then(|s| s.rollback.clone());
        let Some(point) = point.filter(|p| self.enabled_iccid().as_ref() == Some(&p.enabled))
        else {
            tracing::warn!("ProfileRollback refused: no enable with rollbackFlag to go back from");
            return answer(codes::ROLLBACK_NOT_ALLOWED, None);
        };
        let switched = match &point.previous {
            Some(previous) => match self.profile_index(previous) {
                Some(_) => self.enable_digits(previous),
                None => ProfileResult::NotFound,
            },
            None => self.disable_digits(&point.enabled),
        };
        if switched != ProfileResult::Ok {
            tracing::warn!(?switched, "ProfileRollback failed");
            return answer(codes::UNDEFINED_ERROR, None);
        }
        tracing::info!(from = %point.enabled, to = ?point.previous, "profile rolled back");
        let result = self.rollback_result(&point);
        answer(codes::OK, result)
    }

    /// The signed EuiccPackageResult of a rollback, when its eIM is still
    /// associated.
    fn rollback_result(&mut self, point: &RollbackPoint) -> Option<sgp32::EuiccPackageResult> {
        let eim = self
            .state
            .eims
            .iter()
            .find(|e| e.eim_id == point.eim_id)?
            .clone();
        self.state.last_seq_number += 1;
        self.changed();
        let data = sgp32::EuiccPackageResultDataSigned::new(
            point.eim_id.clone(),
            Integer::from(point.counter),
            point
                .transaction_id
                .as_ref()
                .map(|t| rsp::TransactionId(t.as_bytes().to_vec().into())),
            Integer::from(self.state.last_seq_number),
            vec![sgp32::EuiccResultData::rollbackResult(
                sgp32::RollbackProfileResult(Integer::from(codes::OK)),
            )],
        );
        let token = eim.association_token.map(Integer::from);
        let signed = self.sign_result(false, &data, token.as_ref(), &[])?;
        decode_der(&signed).ok()
    }

    /// ES10b ExecuteFallbackMechanism.
    pub(super) fn execute_fallback(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = decode::<sgp32::ExecuteFallbackMechanismRequest>(cmd) {
            return e;
        }
        let answer = |code: i64| {
            Es10Reply::encode(&sgp32::ExecuteFallbackMechanismResponse::new(
                Integer::from(code),
            ))
        };
        let Some(fallback) = self.switching().and_then(|s| s.fallback.clone()) else {
            return answer(codes::FALLBACK_NOT_AVAILABLE);
        };
        let previous = self.enabled_iccid();
        match self.enable_digits(&fallback) {
            ProfileResult::Ok => {}
            ProfileResult::WrongState => return answer(codes::PROFILE_NOT_IN_DISABLED_STATE),
            other => {
                tracing::warn!(?other, "ExecuteFallbackMechanism failed");
                return answer(codes::UNDEFINED_ERROR);
            }
        }
        tracing::info!(%fallback, ?previous, "Fallback Mechanism executed");
        self.switching_mut().in_fallback = Some(FallbackPoint { previous });
        self.changed();
        answer(codes::OK)
    }

    /// ES10b ReturnFromFallback.
    pub(super) fn return_from_fallback(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = decode::<sgp32::ReturnFromFallbackRequest>(cmd) {
            return e;
        }
        let answer = |code: i64| {
            Es10Reply::encode(&sgp32::ReturnFromFallbackResponse::new(Integer::from(code)))
        };
        let Some(s) = self.switching().filter(|s| s.fallback.is_some()) else {
            return answer(codes::FALLBACK_NOT_AVAILABLE);
        };
        let Some(point) = s.in_fallback.clone() else {
            return answer(codes::COMMAND_ERROR);
        };
        let Some(fallback) = s.fallback.clone() else {
            return answer(codes::FALLBACK_NOT_AVAILABLE);
        };
        let result = match point.previous.as_ref() {
            Some(previous) if self.profile_index(previous).is_some() => {
                self.enable_digits(previous)
            }
            _ => self.disable_digits(&fallback),
        };
        if result != ProfileResult::Ok {
            tracing::warn!(?result, "ReturnFromFallback failed");
            return answer(codes::UNDEFINED_ERROR);
        }
        tracing::info!(to = ?point.previous, "returned from fallback");
        answer(codes::OK)
    }

    /// ES10b ImmediateEnable.
    pub(super) fn immediate_enable(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = decode::<sgp32::ImmediateEnableRequest>(cmd) {
            return e;
        }
        let answer = |code: i64| {
            Es10Reply::encode(&sgp32::ImmediateEnableResponse::new(Integer::from(code)))
        };
        let s = self.switching();
        if !s
            .and_then(|s| s.immediate_enable.as_ref())
            .is_some_and(|c| c.allowed)
        {
            return answer(codes::IMMEDIATE_ENABLE_NOT_AVAILABLE);
        }
        let Some(iccid) = s.and_then(|s| s.just_installed.clone()) else {
            return answer(codes::NO_SESSION_CONTEXT);
        };
        match self.enable_digits(&iccid) {
            ProfileResult::Ok => {
                tracing::info!(%iccid, "profile enabled immediately after its download");
                answer(codes::OK)
            }
            ProfileResult::NotFound => answer(codes::NO_SESSION_CONTEXT),
            other => {
                tracing::warn!(?other, "ImmediateEnable failed");
                answer(codes::UNDEFINED_ERROR)
            }
        }
    }

    /// Whether the profile `digits` carries the fallback attribute.
    pub(super) fn is_fallback(&self, iccid: &Iccid) -> bool {
        self.switching()
            .and_then(|s| s.fallback.as_ref())
            .is_some_and(|f| f == iccid)
    }

    fn profile_index(&self, iccid: &Iccid) -> Option<usize> {
        self.state.profiles.iter().position(|p| &p.iccid == iccid)
    }

    fn iccid_digits(&self, iccid: &[u8; 10]) -> Option<Iccid> {
        self.state
            .profiles
            .iter()
            .find(|p| &p.iccid_bytes() == iccid)
            .map(|p| p.iccid.clone())
    }

    fn enable_digits(&mut self, digits: &Iccid) -> ProfileResult {
        match self.profile_index(digits) {
            Some(i) => {
                let bytes = self.state.profiles[i].iccid_bytes();
                self.enable(&ProfileId::Iccid(&bytes))
            }
            None => ProfileResult::NotFound,
        }
    }

    fn disable_digits(&mut self, digits: &Iccid) -> ProfileResult {
        match self.profile_index(digits) {
            Some(i) if self.state.profiles[i].state == ProfileState::Enabled => {
                let bytes = self.state.profiles[i].iccid_bytes();
                self.disable(&ProfileId::Iccid(&bytes))
            }
            Some(_) => ProfileResult::WrongState,
            None => ProfileResult::NotFound,
        }
    }
}

/// Whether StoreMetadata (`BF25`) carries `fallbackAllowed` TRUE.
pub(super) fn fallback_allowed(metadata_der: &[u8]) -> bool {
    Tlv::parse_exact(metadata_der)
        .ok()
        .and_then(|m| m.find(TAG_FALLBACK_ALLOWED).ok().flatten())
        .is_some_and(|t| t.value == [0xFF])
}
