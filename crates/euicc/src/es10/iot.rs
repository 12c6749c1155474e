//! The IoT functions of SGP.32 on the virtual eUICC: ES10b AddInitialEim
//! (`BF57`), GetEimConfigurationData (`BF55`), LoadEuiccPackage (`BF51`),
//! GetCerts (`BF56`) and the IoT EuiccMemoryReset (`BF64`).
//!
//! A package is accepted only from an associated eIM, with a valid
//! eimSignature (over the DER of `EuiccPackageSigned` followed by the
//! association-token TLV), this eUICC's EID and a counter above the last
//! one accepted and within range. A package from an unknown eIM or with a
//! bad signature gets `euiccPackageErrorUnsigned` (undefinedError): the
//! eUICC cannot tell who sent it, so it signs nothing for it. A package for
//! another EID gets a signed `invalidEid`, a counter not above the last one
//! `replayError`, one above 0x7FFFFF `counterValueOutOfRange`; the counter
//! is not moved by a refused package. The results of an accepted package
//! are signed (euiccSignEPR, v1.2 input: the result data followed by the
//! association-token TLV).
//!
//! PSMOs run here: enable (with rollbackFlag), disable, delete (the same
//! rules and notifications as ES10c), listProfileInfo (with the fallback
//! attribute), configureImmediateEnable, setFallbackAttribute and
//! unsetFallbackAttribute (their rules in [`super::switching`]); every eCO
//! (addEim, updateEim, deleteEim, listEim). getRAT and setDefaultDpAddress
//! end the package with `processingTerminated` (undefinedError), the
//! spec's way of saying the rest of the list was not run.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::{
    eim_signature_input, euicc_package_request, package_result_from_parts, result_signature_input,
};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::ecdsa::VerifyingKey;

use super::profiles::ProfileId;
use super::switching::PackageContext;
use super::{Es10Reply, Isdr, decode};
use crate::apdu::StatusWord;
use crate::codes::ProfileResult;
use crate::state::EimEntry;
use ferrosim_ids::TransactionId;

/// Largest counter value an eIM may use (SGP.32: `counterValueOutOfRange`
/// above it).
pub const MAX_COUNTER: u32 = 0x7F_FFFF;
/// Most eIMs one eUICC keeps.
pub const MAX_EIMS: usize = 4;

/// EuiccPackageErrorCode values.
mod package_error {
    pub const INVALID_EID: i64 = 3;
    pub const REPLAY_ERROR: i64 = 4;
    pub const COUNTER_VALUE_OUT_OF_RANGE: i64 = 6;
    pub const UNDEFINED_ERROR: i64 = 127;
}

/// addInitialEimError values.
mod add_initial_error {
    pub const INSUFFICIENT_MEMORY: i64 = 1;
    pub const ASSOCIATED_EIM_ALREADY_EXISTS: i64 = 2;
    pub const COUNTER_VALUE_OUT_OF_RANGE: i64 = 6;
    pub const COMMAND_ERROR: i64 = 7;
}

/// `processingTerminated` undefinedError.
const PROCESSING_UNDEFINED: i64 = 127;

impl Isdr {
    /// ES10b AddInitialEim: the first eIM configuration(s). Refused when an
    /// eIM is already associated.
    pub(super) fn add_initial_eim(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: sgp32::AddInitialEimRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let refuse = |code: i64| {
            Es10Reply::encode(&sgp32::AddInitialEimResponse::addInitialEimError(
                Integer::from(code),
            ))
        };
        if !self.state.eims.is_empty() {
            return refuse(add_initial_error::ASSOCIATED_EIM_ALREADY_EXISTS);
        }
        let list = &request.eim_configuration_data_list;
        if list.is_empty() {
            return refuse(add_initial_error::COMMAND_ERROR);
        }
        if list.len() > MAX_EIMS {
            return refuse(add_initial_error::INSUFFICIENT_MEMORY);
        }
        let mut entries = Vec::with_capacity(list.len());
        let mut answers = Vec::with_capacity(list.len());
        for data in list {
            let entry = match eim_entry(data) {
                Ok(entry) => entry,
                Err(code) => return refuse(code),
            };
            if entries.iter().any(|e: &EimEntry| e.eim_id == entry.eim_id) {
                return refuse(add_initial_error::COMMAND_ERROR);
            }
            answers.push(match entry.association_token {
                Some(token) => {
                    sgp32::AnonymousAddInitialEimResponseAddInitialEimOk::associationToken(
                        Integer::from(token),
                    )
                }
                None => sgp32::AnonymousAddInitialEimResponseAddInitialEimOk::addOk(()),
            });
            entries.push(entry);
        }
        tracing::info!(
            eims = ?entries.iter().map(|e| e.eim_id.as_str()).collect::<Vec<_>>(),
            "initial eIM configuration added"
        );
        self.state.eims = entries;
        self.changed();
        Es10Reply::encode(&sgp32::AddInitialEimResponse::addInitialEimOk(
            sgp32::AddInitialEimResponseAddInitialEimOk(answers),
        ))
    }

    /// ES10b GetEimConfigurationData: the associated eIMs (all, or the one
    /// named), with their current counter values.
    pub(super) fn get_eim_configuration_data(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: sgp32::GetEimConfigurationDataRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let wanted = request.search_criteria.map(|c| match c {
            sgp32::GetEimConfigurationDataRequestSearchCriteria::eimId(id) => id,
        });
        let list = self
            .state
            .eims
            .iter()
            .filter(|e| wanted.as_deref().is_none_or(|w| w == e.eim_id))
            .map(configuration_data)
            .collect();
        Es10Reply::encode(&sgp32::GetEimConfigurationDataResponse::new(list))
    }

    /// ES10b GetCerts: the EUM and eUICC certificates, for an eIM to
    /// verify the eUICC's signatures; `invalidCiPKId` (1) when the CI key
    /// named is not the one this eUICC signs under.
    pub(super) fn get_certs(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: sgp32::GetCertsRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let identity = self.identity();
        if let Some(wanted) = &request.euicc_ci_pkid
            && !identity
                .ci_key_ids_for_signing()
                .iter()
                .any(|k| k.as_bytes() == wanted.0.0.as_ref())
        {
            return Es10Reply::encode(&sgp32::GetCertsResponse::getCertsError(Integer::from(1)));
        }
        let eum = decode_der(identity.eum_certificate().der());
        let euicc = decode_der(identity.euicc_certificate_der());
        match (eum, euicc) {
            (Ok(eum), Ok(euicc)) => Es10Reply::encode(&sgp32::GetCertsResponse::certs(
                sgp32::GetCertsResponseCerts::new(eum, euicc),
            )),
            _ => Es10Reply::encode(&sgp32::GetCertsResponse::getCertsError(Integer::from(127))),
        }
    }

    /// ES10b EuiccMemoryReset of SGP.32 (`BF64`): the SGP.22 options plus
    /// provisioning profiles, the eIM configuration (resetEimConfigData)
    /// and the immediate-enable configuration (resetImmediateEnableConfig:
    /// ok, or 1 when there was none to reset).
    pub(super) fn iot_memory_reset(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: sgp32::EuiccMemoryResetRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let option = |i: usize| request.reset_options.get(i).is_some_and(|b| *b);
        // Bit 3 (pre-loaded test profiles): this eUICC has none of its own.
        let result = self.reset_memory(option(0), option(1), option(4), option(2));
        let eim_result = option(5).then(|| {
            if self.state.eims.is_empty() {
                1
            } else {
                self.state.eims.clear();
                self.changed();
                tracing::info!("eIM configuration reset");
                0
            }
        });
        let iec_result = option(6).then(|| if self.reset_immediate_enable() { 0 } else { 1 });
        Es10Reply::encode(&sgp32::EuiccMemoryResetResponse::new(
            Integer::from(result.code()),
            eim_result.map(Integer::from),
            iec_result.map(Integer::from),
        ))
    }

    /// ES10b LoadEuiccPackage: checks and runs an eUICC package, answering
    /// with the (signed) EuiccPackageResult.
    pub(super) fn load_euicc_package(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let Ok(part) = euicc_package_request(cmd.raw) else {
            return Es10Reply::Status(StatusWord::WRONG_DATA);
        };
        let Ok(signed) = decode_der::<sgp32::EuiccPackageSigned>(part.signed) else {
            return Es10Reply::Status(StatusWord::WRONG_DATA);
        };
        let unsigned = |token: Option<i64>| {
            package_error_unsigned(&signed, token, package_error::UNDEFINED_ERROR)
        };
        let Some(index) = self
            .state
            .eims
            .iter()
            .position(|e| e.eim_id == signed.eim_id)
        else {
            tracing::warn!(eim = %signed.eim_id, "package from an eIM not associated");
            return unsigned(None);
        };
        let eim = self.state.eims[index].clone();
        let token = eim.association_token.map(Integer::from);
        let verified = eim_signature_input(part.signed, token.as_ref())
            .ok()
            .zip(VerifyingKey::from_sec1(&eim.public_key).ok())
            .is_some_and(|(input, key)| key.verify_raw(&input, part.signature).is_ok());
        if !verified {
            tracing::warn!(eim = %eim.eim_id, "package with a bad eIM signature refused");
            return unsigned(eim.association_token);
        }
        let counter = u64::try_from(&signed.counter_value).ok();
        let refusal = if signed.eid_value.0.as_ref() != self.identity().eid().to_bcd().as_slice() {
            Some(package_error::INVALID_EID)
        } else {
            match counter {
                Some(c) if c > u64::from(MAX_COUNTER) => {
                    Some(package_error::COUNTER_VALUE_OUT_OF_RANGE)
                }
                None => Some(package_error::COUNTER_VALUE_OUT_OF_RANGE),
                Some(c) if c <= u64::from(eim.counter) => Some(package_error::REPLAY_ERROR),
                Some(_) => None,
            }
        };
        if let Some(code) = refusal {
            tracing::warn!(eim = %eim.eim_id, code, "package refused");
            let data = sgp32::EuiccPackageErrorDataSigned::new(
                signed.eim_id.clone(),
                signed.counter_value.clone(),
                signed.eim_transaction_id.clone(),
                sgp32::EuiccPackageErrorCode(Integer::from(code)),
            );
            return self.signed_result(true, &data, token.as_ref(), part.signature_tlv);
        }
        // Accepted: the counter moves before anything runs, so a replay of
        // this package is refused whatever its operations did.
        let accepted = counter
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(MAX_COUNTER);
        self.state.eims[index].counter = accepted;
        self.end_rollback();
        self.changed();
        let context = PackageContext {
            eim_id: &signed.eim_id,
            counter: accepted,
            // The decoder holds eimTransactionId to its 1 to 16 bytes.
            transaction_id: signed
                .eim_transaction_id
                .as_ref()
                .and_then(|t| TransactionId::from_bytes(&t.0).ok()),
        };
        let results = match &signed.euicc_package {
            sgp32::EuiccPackage::psmoList(psmos) => self.run_psmos(psmos, &context),
            sgp32::EuiccPackage::ecoList(ecos) => self.run_ecos(ecos),
        };
        self.state.last_seq_number += 1;
        let data = sgp32::EuiccPackageResultDataSigned::new(
            signed.eim_id.clone(),
            signed.counter_value.clone(),
            signed.eim_transaction_id.clone(),
            Integer::from(self.state.last_seq_number),
            results,
        );
        tracing::info!(eim = %eim.eim_id, counter = ?counter, "eUICC package executed");
        self.signed_result(false, &data, token.as_ref(), part.signature_tlv)
    }

    fn run_psmos(
        &mut self,
        psmos: &[sgp32::Psmo],
        context: &PackageContext<'_>,
    ) -> Vec<sgp32::EuiccResultData> {
        use sgp32::EuiccResultData as R;
        let mut results = Vec::with_capacity(psmos.len());
        for psmo in psmos {
            let result = match psmo {
                sgp32::Psmo::enable(p) => R::enableResult(sgp32::EnableProfileResult(code(
                    self.psmo_enable(&p.iccid.0, p.rollback_flag.is_some(), context),
                ))),
                sgp32::Psmo::disable(p) => R::disableResult(sgp32::DisableProfileResult(code(
                    self.disable(&ProfileId::Iccid(&p.iccid.0)),
                ))),
                sgp32::Psmo::delete(p) => {
                    R::deleteResult(sgp32::DeleteProfileResult(self.psmo_delete(&p.iccid.0)))
                }
                sgp32::Psmo::setFallbackAttribute(p) => {
                    R::setFallbackAttributeResult(sgp32::SetFallbackAttributeResult(Integer::from(
                        self.set_fallback_attribute(&p.iccid.0),
                    )))
                }
                sgp32::Psmo::unsetFallbackAttribute(_) => {
                    R::unsetFallbackAttributeResult(sgp32::UnsetFallbackAttributeResult(
                        Integer::from(self.unset_fallback_attribute()),
                    ))
                }
                sgp32::Psmo::configureImmediateEnable(c) => {
                    R::configureImmediateEnableResult(sgp32::ConfigureImmediateEnableResult(
                        Integer::from(self.configure_immediate_enable(c)),
                    ))
                }
                sgp32::Psmo::listProfileInfo(request) => match self.list_profiles(request) {
                    Some(list) => R::listProfileInfoResult(list),
                    None => R::processingTerminated(Integer::from(PROCESSING_UNDEFINED)),
                },
                _ => R::processingTerminated(Integer::from(PROCESSING_UNDEFINED)),
            };
            let stop = matches!(result, R::processingTerminated(_));
            results.push(result);
            if stop {
                break;
            }
        }
        results
    }

    fn run_ecos(&mut self, ecos: &[sgp32::Eco]) -> Vec<sgp32::EuiccResultData> {
        use sgp32::EuiccResultData as R;
        let mut results = Vec::with_capacity(ecos.len());
        for eco in ecos {
            let result = match eco {
                sgp32::Eco::listEim(_) => R::listEimResult(sgp32::ListEimResult::eimIdList(
                    self.state
                        .eims
                        .iter()
                        .map(|e| {
                            sgp32::EimIdInfo::new(
                                e.eim_id.clone(),
                                e.id_type.map(|t| sgp32::EimIdType(Integer::from(t))),
                            )
                        })
                        .collect(),
                )),
                sgp32::Eco::addEim(data) => R::addEimResult(self.add_eim(data)),
                sgp32::Eco::updateEim(data) => {
                    R::updateEimResult(sgp32::UpdateEimResult(Integer::from(self.update_eim(data))))
                }
                sgp32::Eco::deleteEim(d) => R::deleteEimResult(sgp32::DeleteEimResult(
                    Integer::from(self.delete_eim(&d.eim_id)),
                )),
            };
            let stop = matches!(result, R::processingTerminated(_));
            results.push(result);
            if stop {
                break;
            }
        }
        results
    }

    /// eCO addEim: one more eIM (its id must be new).
    fn add_eim(&mut self, data: &sgp32::EimConfigurationData) -> sgp32::AddEimResult {
        let code = |c: i64| sgp32::AddEimResult::addEimResultCode(Integer::from(c));
        if self.state.eims.iter().any(|e| e.eim_id == data.eim_id) {
            return code(add_initial_error::ASSOCIATED_EIM_ALREADY_EXISTS);
        }
        if self.state.eims.len() >= MAX_EIMS {
            return code(add_initial_error::INSUFFICIENT_MEMORY);
        }
        match eim_entry(data) {
            Ok(entry) => {
                tracing::info!(eim = %entry.eim_id, "eIM added");
                let token = entry.association_token;
                self.state.eims.push(entry);
                self.changed();
                match token {
                    Some(t) => sgp32::AddEimResult::associationToken(Integer::from(t)),
                    None => code(0),
                }
            }
            Err(c) => code(c),
        }
    }

    /// eCO updateEim: the fields given replace the eIM's; `eimNotFound` (1).
    fn update_eim(&mut self, data: &sgp32::EimConfigurationData) -> i64 {
        let Some(i) = self.state.eims.iter().position(|e| e.eim_id == data.eim_id) else {
            return 1;
        };
        let mut entry = self.state.eims[i].clone();
        match update_entry(&mut entry, data) {
            Ok(()) => {
                tracing::info!(eim = %entry.eim_id, "eIM updated");
                self.state.eims[i] = entry;
                self.changed();
                0
            }
            Err(c) => c,
        }
    }

    /// eCO deleteEim: `eimNotFound` (1); `lastEimDeleted` (2) when it was
    /// the last one (the eUICC then has no eIM).
    fn delete_eim(&mut self, eim_id: &str) -> i64 {
        let Some(i) = self.state.eims.iter().position(|e| e.eim_id == eim_id) else {
            return 1;
        };
        self.state.eims.remove(i);
        self.changed();
        tracing::info!(eim = eim_id, "eIM deleted");
        if self.state.eims.is_empty() { 2 } else { 0 }
    }

    /// listProfileInfo through the ES10c GetProfilesInfo of this eUICC (the
    /// SGP.32 request and answer share its tags).
    fn list_profiles(
        &self,
        request: &rsp::ProfileInfoListRequest,
    ) -> Option<sgp32::ProfileInfoListResponse> {
        let der = encode_der(request).ok()?;
        let tlv = Tlv::parse_exact(&der).ok()?;
        let mut list: sgp32::ProfileInfoListResponse = match self.get_profiles_info(&tlv) {
            Es10Reply::Data(answer) => decode_der(&answer).ok()?,
            _ => return None,
        };
        if let sgp32::ProfileInfoListResponse::profileInfoListOk(infos) = &mut list {
            for info in infos {
                let digits = info
                    .iccid
                    .as_ref()
                    .and_then(|i| self.state.profiles.iter().find(|p| p.iccid_bytes() == *i.0));
                if let Some(profile) = digits {
                    info.fallback_attribute = self.is_fallback(&profile.iccid);
                    info.fallback_allowed =
                        Some(super::switching::fallback_allowed(&profile.metadata_der));
                }
            }
        }
        Some(list)
    }

    /// `BF51 { A0|A1 { data, 5F37 signature } }` signed with the eUICC key
    /// over the v1.2 input (data, then the association-token TLV).
    fn signed_result<T: ferrosim_asn1::rasn::Encode>(
        &self,
        error: bool,
        data: &T,
        token: Option<&Integer>,
        eim_signature_tlv: &[u8],
    ) -> Es10Reply {
        match self.sign_result(error, data, token, eim_signature_tlv) {
            Some(result) => Es10Reply::Data(result),
            None => {
                tracing::error!("cannot sign an eUICC package result");
                Es10Reply::Status(StatusWord(0x6F00))
            }
        }
    }
}

impl Isdr {
    /// The DER of `BF51 { A0|A1 { data, 5F37 signature } }` (see
    /// [`Isdr::signed_result`]); `None` if it cannot be built.
    pub(super) fn sign_result<T: ferrosim_asn1::rasn::Encode>(
        &self,
        error: bool,
        data: &T,
        token: Option<&Integer>,
        eim_signature_tlv: &[u8],
    ) -> Option<Vec<u8>> {
        let der = encode_der(data).ok()?;
        let input =
            result_signature_input(&der, Sgp32Version::V1_2, token, eim_signature_tlv).ok()?;
        let signature = self.identity().sign_raw(&input).ok()?;
        Some(package_result_from_parts(error, &der, &signature))
    }
}

/// A `euiccPackageErrorUnsigned` for `signed`.
fn package_error_unsigned(
    signed: &sgp32::EuiccPackageSigned,
    token: Option<i64>,
    code: i64,
) -> Es10Reply {
    Es10Reply::encode(&sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(
        sgp32::EuiccPackageErrorUnsigned::new(
            signed.eim_id.clone(),
            signed.eim_transaction_id.clone(),
            token.map(Integer::from),
            Some(sgp32::EuiccPackageUnsignedErrorCode(Integer::from(code))),
        ),
    ))
}

fn code(result: ProfileResult) -> Integer {
    Integer::from(result.code())
}

/// What the eUICC keeps of one EimConfigurationData, or the
/// addInitialEimError / addEimResultCode it earns (the codes are shared).
fn eim_entry(data: &sgp32::EimConfigurationData) -> Result<EimEntry, i64> {
    if data.eim_public_key_data.is_none() {
        return Err(add_initial_error::COMMAND_ERROR);
    }
    let mut entry = EimEntry {
        eim_id: data.eim_id.clone(),
        fqdn: None,
        id_type: None,
        counter: 0,
        association_token: None,
        public_key: Vec::new(),
    };
    update_entry(&mut entry, data)?;
    Ok(entry)
}

/// Applies the fields `data` carries to `entry` (eCO updateEim), checking
/// each; on error `entry` may be half updated, so callers work on a copy.
fn update_entry(entry: &mut EimEntry, data: &sgp32::EimConfigurationData) -> Result<(), i64> {
    use sgp32::EimConfigurationDataEimPublicKeyData as Key;
    if data.eim_id.is_empty() || data.eim_id.len() > 128 {
        return Err(add_initial_error::COMMAND_ERROR);
    }
    let spki = match &data.eim_public_key_data {
        Some(Key::eimPublicKey(spki)) => Some(spki),
        Some(Key::eimCertificate(cert)) => Some(&cert.tbs_certificate.subject_public_key_info),
        None => None,
    };
    if let Some(spki) = spki {
        let point = spki.subject_public_key.as_raw_slice();
        let key = VerifyingKey::from_sec1(point).map_err(|_| add_initial_error::COMMAND_ERROR)?;
        entry.public_key = key
            .to_uncompressed()
            .map_err(|_| add_initial_error::COMMAND_ERROR)?
            .to_vec();
    }
    if let Some(value) = &data.counter_value {
        entry.counter = u32::try_from(value)
            .ok()
            .filter(|c| *c <= MAX_COUNTER)
            .ok_or(add_initial_error::COUNTER_VALUE_OUT_OF_RANGE)?;
    }
    if let Some(token) = &data.association_token {
        entry.association_token =
            Some(i64::try_from(token).map_err(|_| add_initial_error::COMMAND_ERROR)?);
    }
    if let Some(id_type) = &data.eim_id_type {
        entry.id_type =
            Some(i64::try_from(&id_type.0).map_err(|_| add_initial_error::COMMAND_ERROR)?);
    }
    if data.eim_fqdn.is_some() {
        entry.fqdn = data.eim_fqdn.clone();
    }
    Ok(())
}

/// The EimConfigurationData GetEimConfigurationData reports for `entry`.
fn configuration_data(entry: &EimEntry) -> sgp32::EimConfigurationData {
    sgp32::EimConfigurationData::new(
        entry.eim_id.clone(),
        entry.fqdn.clone(),
        entry.id_type.map(|t| sgp32::EimIdType(Integer::from(t))),
        Some(Integer::from(entry.counter)),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
}
