//! An IoT device's IPA and its eUICC's IoT functions, over the real virtual
//! eUICC and the real eIM.
//!
//! [`Factory`] makes a device's eUICC when the device first needs one: a new
//! P-256 key, a certificate issued by the scenario's EUM (from a template of
//! the eUICC certificate, signed for each device), a
//! [`VirtualEuicc`] (whose identity checks that chain) holding the
//! device's profiles as deployed before the event, and the eIM's
//! association (which verifies the chain again). [`IotCard::fetch`] is one
//! ESipa exchange: the IPA's GetEimPackage goes through the eIM's ASN.1
//! binding, the eUICC verifies the eIM's signature and counter, runs each
//! PSMO through its ES10c functions (enable, disable, delete, list) and
//! signs the result with its key; ProvideEimPackageResult goes back to the
//! eIM, which verifies the signature and stores the result.
//!
//! The virtual eUICC has no SGP.32 functions of its own yet: this module
//! is the eUICC-side package handling (signature, counter, result signing)
//! around its SGP.22 profile operations, with the fallback attribute kept
//! here. Every elliptic-curve operation of that path is counted in
//! [`EcCount`], for the run's lower bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, UNIX_EPOCH};

use ferrosim_asn1::esipa::{Sgp32Version, encode_eim_message, read_ipa_message};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::signed::sgp32::{
    eim_signature_input, euicc_package_request, package_result_from_parts, result_signature_input,
};
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::values::ProfileState;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_eim::{AssociationRequest, Counter, Eim, EsipaAnswer, MemEimStore, Timestamp};
use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_ids::{Eid, Iccid};
use ferrosim_pki::{
    CertRole, CertificateRequest, EuiccCertificateTemplate, RspCertificate, TestPki, TestPkiOptions,
};
use rand::rngs::StdRng;

use crate::error::SimError;

pub(crate) mod apdu;

use apdu::{MetadataTemplate, deployed_profile, es10, op_of, open_isdr, result_code};

/// SM-DP+ address written in the deployed profiles' metadata.
pub(crate) const SMDP_ADDRESS: &str = "smdp.ferrosim.test";
/// The eIM counter the eUICCs start from (their `EimConfigurationData`).
const FIRST_COUNTER: u32 = 1;
/// The association token the eUICCs hold for the eIM.
const ASSOCIATION_TOKEN: i64 = 1;

/// Elliptic-curve operations done by the run, by kind.
#[derive(Debug, Default)]
pub struct EcCount {
    /// ECDSA signatures (eIM packages, eUICC results and notifications,
    /// eUICC certificates).
    pub signs: AtomicU64,
    /// ECDSA verifications (eIM signatures on the eUICC, eUICC results on
    /// the eIM, certificate chains).
    pub verifies: AtomicU64,
    /// Key pairs generated (eUICC keys, one-time keys of downloads).
    pub keygens: AtomicU64,
    /// ECDH key agreements (downloads).
    pub agreements: AtomicU64,
}

impl EcCount {
    fn add(&self, signs: u64, verifies: u64, keygens: u64) {
        self.signs.fetch_add(signs, Ordering::Relaxed);
        self.verifies.fetch_add(verifies, Ordering::Relaxed);
        self.keygens.fetch_add(keygens, Ordering::Relaxed);
    }

    /// Adds one download's operations (both sides).
    pub fn add_download(&self, signs: u64, verifies: u64, keygens: u64, agreements: u64) {
        self.add(signs, verifies, keygens);
        self.agreements.fetch_add(agreements, Ordering::Relaxed);
    }

    /// (signs, verifies, key generations, key agreements) so far.
    pub fn get(&self) -> (u64, u64, u64, u64) {
        (
            self.signs.load(Ordering::Relaxed),
            self.verifies.load(Ordering::Relaxed),
            self.keygens.load(Ordering::Relaxed),
            self.agreements.load(Ordering::Relaxed),
        )
    }
}

/// What makes eUICCs and talks to the eIM: the scenario's PKI and the eIM.
pub struct Factory {
    eum_certificate: RspCertificate,
    eum_key: SoftwareKey,
    shared: Arc<SharedIdentity>,
    /// The eIM (its store is shared by the shards; each device's records are
    /// only touched by its own shard).
    pub eim: Eim<MemEimStore>,
    eim_key: VerifyingKey,
    /// EC operations done.
    pub ec: Arc<EcCount>,
    /// Issues the eUICC certificates (from the EUM, for each device's key
    /// and EID).
    euicc_certificates: EuiccCertificateTemplate,
    /// The scenario's PKI (its SM-DP+ certificates serve consumer phones).
    pub pki: TestPki,
    /// The deployed profiles' metadata, per ISD-P, encoded once.
    metadata: Vec<MetadataTemplate>,
}

/// ISD-Ps whose deployed metadata the factory encodes once (the scenarios
/// deploy one or two profiles; more are encoded per device).
const METADATA_TEMPLATES: usize = 4;

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory").finish_non_exhaustive()
    }
}

impl Factory {
    /// A fresh PKI (CI, EUM with the EID prefix of the simulated devices)
    /// and an eIM with its own key on an in-memory store.
    pub fn new(eid_prefix: &str) -> Result<Self, SimError> {
        let not_before = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let options = TestPkiOptions {
            euicc_count: 0,
            eid_prefix: eid_prefix
                .parse()
                .map_err(|e| SimError::Setup(format!("EID prefix: {e}")))?,
            not_before,
            smdp_address: SMDP_ADDRESS.into(),
            ..TestPkiOptions::default()
        };
        let pki = TestPki::generate(&options).map_err(setup("test PKI"))?;
        let eum_key = pki.eum.signing_key().map_err(setup("EUM key"))?;
        let mut request = CertificateRequest::new(
            CertRole::Euicc,
            "ferrosim simulated eUICC",
            not_before,
            ferrosim_pki::generate::end_of_time(),
        );
        request.organization = Some("ferrosim Test EUM".into());
        // The prototype's EID (the first of the range); each device's
        // certificate carries its own.
        request.eid = Some(
            Eid::from_body(&format!("{eid_prefix:0<30}"))
                .map_err(|e| SimError::Setup(format!("EID prefix: {e}")))?,
        );
        let euicc_certificates =
            EuiccCertificateTemplate::new(&request, &pki.eum.certificate, &eum_key)
                .map_err(setup("eUICC certificate template"))?;
        let shared = SharedIdentity::new(
            pki.eum.certificate.der(),
            &[pki.ci.certificate.der().to_vec()],
        )
        .map_err(setup("shared eUICC identity"))?;
        let key = SoftwareKey::generate().map_err(setup("eIM key"))?;
        let eim_key = key.verifying_key().map_err(setup("eIM key"))?;
        let config = ferrosim_eim::EimConfig {
            eim_id: ferrosim_eim::EimId::new("eim.ferrosim.sim").map_err(setup("eIM id"))?,
            key: Arc::new(key),
            trust: pki.trust_store().map_err(setup("trust store"))?,
        };
        Ok(Self {
            eum_certificate: pki.eum.certificate.clone(),
            eum_key,
            shared,
            eim: Eim::new(MemEimStore::new(), config),
            eim_key,
            ec: Arc::new(EcCount::default()),
            euicc_certificates,
            pki,
            metadata: (0..METADATA_TEMPLATES)
                .map(MetadataTemplate::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// A new eUICC key pair and its certificate issued by the scenario's EUM
    /// for `eid`, as the factory personalised it, and the eUICC identity;
    /// with `for_eim`, the certificate as parsed too (for the eIM's
    /// association, which then need not parse it again).
    #[allow(clippy::type_complexity)]
    fn identity(
        &self,
        eid: Eid,
        for_eim: bool,
    ) -> Result<
        (
            EuiccIdentity,
            Arc<SoftwareKey>,
            Vec<u8>,
            Option<RspCertificate>,
        ),
        SimError,
    > {
        let key = SoftwareKey::generate().map_err(setup("eUICC key"))?;
        // A real certificate for the device's own key and EID, signed by
        // the EUM (laid out as the template's prototype).
        let certificate = self
            .euicc_certificates
            .issue(&eid, key.public_key_sec1(), &self.eum_key)
            .map_err(setup("eUICC certificate"))?;
        let key = Arc::new(key);
        let der = certificate.der().to_vec();
        let parsed = for_eim.then(|| certificate.clone());
        // The eUICC takes the certificate as issued (parsed once here).
        let identity = EuiccIdentity::with_shared_certificate(
            Arc::clone(&self.shared),
            certificate,
            Arc::clone(&key) as Arc<dyn KeySource>,
        )
        .map_err(setup("eUICC identity"))?;
        // Key generation; the EUM's signature on the certificate; the chain
        // checked by the eUICC identity.
        self.ec.add(1, 1, 1);
        Ok((identity, key, der, parsed))
    }

    /// The empty eUICC of consumer phone `eid` (no profile yet).
    pub fn phone(&self, eid: Eid) -> Result<VirtualEuicc, SimError> {
        let (identity, ..) = self.identity(eid, false)?;
        Ok(VirtualEuicc::new(identity, EuiccState::default()))
    }

    /// Makes the eUICC of device `eid` holding `profiles` (the first
    /// `enabled`, `fallback` carrying the fallback attribute as staged
    /// before the event), and associates it with the eIM.
    pub fn make(
        &self,
        eid: Eid,
        profiles: &[Iccid],
        enabled: usize,
        fallback: Option<Iccid>,
        now: Timestamp,
    ) -> Result<IotCard, SimError> {
        let (identity, key, certificate, parsed) = self.identity(eid, true)?;
        let mut state = EuiccState::default();
        for (i, iccid) in profiles.iter().enumerate() {
            state.profiles.push(deployed_profile(
                iccid,
                i,
                i == enabled,
                self.metadata.get(i),
            )?);
        }
        state.isdp_counter = profiles.len() as u32;
        // The eUICC's own record of the fallback attribute, which its
        // ExecuteFallbackMechanism uses.
        if let Some(f) = &fallback {
            state.switching = Some(Box::new(ferrosim_euicc::state::Switching {
                fallback: Some(f.clone()),
                ..Default::default()
            }));
        }
        let association = AssociationRequest {
            eid,
            eum_certificate: self.eum_certificate.der().to_vec(),
            euicc_certificate: certificate,
            counter: Counter::new(u64::from(FIRST_COUNTER)).map_err(setup("counter"))?,
            association_token: Some(ASSOCIATION_TOKEN),
            euicc_version: Sgp32Version::V1_2,
            emulated: false,
        };
        // The eIM checks the chain again (its signatures and the EID) on the
        // certificate as the factory parsed it when issuing it.
        futures::executor::block_on(self.eim.associate_parsed(association, parsed, now))
            .map_err(|e| SimError::Setup(format!("eIM association: {e}")))?;
        // The chain checked again by the eIM.
        self.ec.add(0, 1, 0);
        let mut card = VirtualEuicc::new(identity, state);
        let channel = open_isdr(&mut card, now)?;
        Ok(IotCard {
            card,
            key,
            channel,
            last_counter: FIRST_COUNTER,
            seq: 0,
            fallback,
            unsent: Vec::new(),
            notifications_signed: 0,
        })
    }

    /// One ESipa exchange of `card`'s IPA with the eIM: fetch the next
    /// package, run it, return the signed result. `None` when nothing was
    /// queued.
    pub fn fetch(
        &self,
        card: &mut IotCard,
        now: Timestamp,
        rng: &mut StdRng,
    ) -> Result<Option<Fetched>, SimError> {
        let eid = *card.card.identity().eid();
        let eid_value = rsp::Octet16(FixedOctetString::new(eid.to_bcd()));
        let request = encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
            sgp32::GetEimPackageRequest::new(eid_value, None, None, None),
        ))
        .map_err(|e| SimError::Device(format!("GetEimPackageRequest: {e}")))?;
        let answer = match futures::executor::block_on(self.eim.handle_asn1(&request, now)) {
            Ok(EsipaAnswer::Message { der, .. }) => der,
            Ok(EsipaAnswer::NoContent) => return Ok(None),
            Err(e) => return Err(SimError::Device(format!("GetEimPackage: {e}"))),
        };
        let poll_bytes = (request.len() + answer.len()) as u32;
        let message: sgp32::EsipaMessageFromEimToIpa = decode_der(&answer)
            .map_err(|e| SimError::Device(format!("GetEimPackageResponse: {e}")))?;
        let package = match message {
            sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                sgp32::GetEimPackageResponse::euiccPackageRequest(r),
            ) => encode_der(&r).map_err(|e| SimError::Device(format!("package: {e}")))?,
            // noEimPackageAvailable or another error: nothing to run.
            _ => return Ok(None),
        };
        let ran = card.run(&package, &self.eim_key, now, rng, &self.ec)?;
        let provide = {
            let value = [tlv(0x5A, &eid.to_bcd()), ran.result.clone()].concat();
            tlv(0xBF50, &value)
        };
        let first = read_ipa_message(&provide, None)
            .map_err(|e| SimError::Device(format!("ProvideEimPackageResult: {e}")))?;
        let report = futures::executor::block_on(self.eim.provide_result(&provide, first, now))
            .map_err(|e| SimError::Device(format!("ProvideEimPackageResult: {e}")))?;
        // The eIM verified the eUICC's signature on the result.
        self.ec.add(0, 1, 0);
        let answer_len = match &report.response {
            Some(r) => encode_eim_message(
                &sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(r.clone()),
                report.version,
            )
            .map(|d| d.len())
            .unwrap_or(0),
            None => 0,
        };
        Ok(Some(Fetched {
            operations: ran.operations,
            accepted: report.refused.is_empty() && !report.ended.is_empty(),
            poll_bytes,
            provide_bytes: (provide.len() + answer_len) as u32,
        }))
    }
}

/// What one package did on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Each operation and its result code (0: ok).
    pub operations: Vec<(Op, i64)>,
    /// The eIM accepted the signed result.
    pub accepted: bool,
    /// GetEimPackage request + answer bytes.
    pub poll_bytes: u32,
    /// ProvideEimPackageResult request + answer bytes.
    pub provide_bytes: u32,
}

/// A PSMO as the device saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// enable (with rollbackFlag).
    Enable(Iccid, bool),
    /// disable.
    Disable(Iccid),
    /// delete.
    Delete(Iccid),
    /// setFallbackAttribute.
    SetFallback(Iccid),
    /// unsetFallbackAttribute.
    UnsetFallback,
    /// listProfileInfo.
    List,
    /// Another PSMO or an eCO (answered as the eUICC would, not modelled).
    Other,
}

/// One device's eUICC and the IPA's memory of it.
pub struct IotCard {
    card: VirtualEuicc,
    key: Arc<SoftwareKey>,
    channel: u8,
    last_counter: u32,
    seq: i64,
    /// The profile carrying the fallback attribute.
    pub fallback: Option<Iccid>,
    /// Notifications the eUICC signed that the IPA has not handed on yet:
    /// sequence number and when signed (ms, the run's clock).
    unsent: Vec<(u64, i64)>,
    /// Notifications the eUICC signed in all.
    notifications_signed: u64,
}

impl std::fmt::Debug for IotCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotCard").finish_non_exhaustive()
    }
}

/// ExecuteFallbackMechanismRequest (`BF5D`), the same for every device:
/// encoded once.
static EXECUTE_FALLBACK: LazyLock<Result<Vec<u8>, String>> = LazyLock::new(|| {
    encode_der(&sgp32::ExecuteFallbackMechanismRequest::new(false)).map_err(|e| e.to_string())
});

/// ReturnFromFallbackRequest (`BF5E`), the same for every device: encoded
/// once.
static RETURN_FROM_FALLBACK: LazyLock<Result<Vec<u8>, String>> = LazyLock::new(|| {
    encode_der(&sgp32::ReturnFromFallbackRequest::new(false)).map_err(|e| e.to_string())
});

struct Ran {
    result: Vec<u8>,
    operations: Vec<(Op, i64)>,
}

impl IotCard {
    /// The eUICC's state.
    pub fn state(&self) -> &EuiccState {
        self.card.state()
    }

    /// The virtual eUICC itself (for the IPA's downloads through ES10b).
    pub fn euicc_mut(&mut self) -> &mut VirtualEuicc {
        &mut self.card
    }

    /// The enabled profile's ICCID.
    pub fn enabled(&self) -> Option<Iccid> {
        self.card
            .state()
            .profiles
            .iter()
            .find(|p| p.state == ProfileState::Enabled)
            .map(|p| p.iccid.clone())
    }

    /// Enables `iccid` through ES10c (the IPA's rollback to the previous
    /// profile, or the fallback mechanism); the eUICC's result code.
    pub fn enable_local(
        &mut self,
        iccid: &Iccid,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<i64, SimError> {
        self.profile_op(&Op::Enable(iccid.clone(), false), now, rng, ec)
    }

    /// SGP.32 ExecuteFallbackMechanism (ES10b `BF5D`) sent by the IPA to
    /// the virtual eUICC, which enables the profile holding the fallback
    /// attribute and signs its notifications. The eUICC's result code (0
    /// ok, 2 profileNotInDisabledState, 6 fallbackNotAvailable) and the
    /// profile then enabled.
    pub fn execute_fallback(
        &mut self,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<(i64, Option<Iccid>), SimError> {
        let command = EXECUTE_FALLBACK
            .as_deref()
            .map_err(|e| SimError::Device(format!("ES10b: {e}")))?;
        self.switch_locally(command, now, rng, ec)
    }

    /// SGP.32 ReturnFromFallback (ES10b `BF5E`): the eUICC enables the
    /// profile used before the Fallback Mechanism. Its result code (0 ok,
    /// 6 fallbackNotAvailable, 7 commandError when the mechanism is not in
    /// use) and the profile then enabled.
    pub fn return_from_fallback(
        &mut self,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<(i64, Option<Iccid>), SimError> {
        let command = RETURN_FROM_FALLBACK
            .as_deref()
            .map_err(|e| SimError::Device(format!("ES10b: {e}")))?;
        self.switch_locally(command, now, rng, ec)
    }

    fn switch_locally(
        &mut self,
        command: &[u8],
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<(i64, Option<Iccid>), SimError> {
        let code = self.es10_signed(command, now, rng, ec)?;
        let enabled = self.enabled().and_then(|i| Iccid::new(&i).ok());
        Ok(if code == 0 {
            (0, enabled)
        } else {
            (code, None)
        })
    }

    /// Runs a delivered EuiccPackageRequest as the eUICC does.
    fn run(
        &mut self,
        package: &[u8],
        eim_key: &VerifyingKey,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<Ran, SimError> {
        let bad = |what: &str| SimError::Device(format!("eUICC package: {what}"));
        let part = euicc_package_request(package).map_err(|e| bad(&e.to_string()))?;
        let token = Integer::from(ASSOCIATION_TOKEN);
        let input =
            eim_signature_input(part.signed, Some(&token)).map_err(|e| bad(&e.to_string()))?;
        ec.add(0, 1, 0);
        eim_key
            .verify_raw(&input, part.signature)
            .map_err(|_| bad("the eIM signature does not verify"))?;
        let signed: sgp32::EuiccPackageSigned =
            decode_der(part.signed).map_err(|e| bad(&e.to_string()))?;
        if signed.eid_value.0.as_slice() != self.card.identity().eid().to_bcd().as_slice() {
            return Err(bad("the package names another EID"));
        }
        let counter = u32::try_from(signed.counter_value.clone()).map_err(|_| bad("counter"))?;
        if counter <= self.last_counter {
            return Err(bad("replayed counter"));
        }
        self.last_counter = counter;
        let mut operations = Vec::new();
        let mut results = Vec::new();
        match &signed.euicc_package {
            sgp32::EuiccPackage::psmoList(psmos) => {
                for psmo in psmos {
                    let op = op_of(psmo);
                    let (code, result) = self.psmo(&op, psmo, now, rng, ec)?;
                    operations.push((op, code));
                    results.push(result);
                }
            }
            sgp32::EuiccPackage::ecoList(ecos) => {
                for _ in ecos {
                    operations.push((Op::Other, 127));
                    results.push(sgp32::EuiccResultData::deleteEimResult(
                        sgp32::DeleteEimResult(127.into()),
                    ));
                }
            }
        }
        self.seq += 1;
        let data = sgp32::EuiccPackageResultDataSigned::new(
            signed.eim_id.clone(),
            signed.counter_value.clone(),
            signed.eim_transaction_id.clone(),
            self.seq.into(),
            results,
        );
        let der = encode_der(&data).map_err(|e| bad(&e.to_string()))?;
        let input =
            result_signature_input(&der, Sgp32Version::V1_2, Some(&token), part.signature_tlv)
                .map_err(|e| bad(&e.to_string()))?;
        ec.add(1, 0, 0);
        let signature = self.key.sign_raw(&input).map_err(|e| bad(&e.to_string()))?;
        Ok(Ran {
            result: package_result_from_parts(false, &der, &signature),
            operations,
        })
    }

    fn psmo(
        &mut self,
        op: &Op,
        psmo: &sgp32::Psmo,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<(i64, sgp32::EuiccResultData), SimError> {
        use sgp32::EuiccResultData as R;
        Ok(match op {
            Op::Enable(..) => {
                let code = self.profile_op(op, now, rng, ec)?;
                (
                    code,
                    R::enableResult(sgp32::EnableProfileResult(code.into())),
                )
            }
            Op::Disable(_) => {
                let code = self.profile_op(op, now, rng, ec)?;
                (
                    code,
                    R::disableResult(sgp32::DisableProfileResult(code.into())),
                )
            }
            Op::Delete(iccid) => {
                let code = self.profile_op(op, now, rng, ec)?;
                if code == 0 && self.fallback.as_ref() == Some(iccid) {
                    self.fallback = None;
                }
                (
                    code,
                    R::deleteResult(sgp32::DeleteProfileResult(code.into())),
                )
            }
            Op::SetFallback(iccid) => {
                // iccidOrAidNotFound(1) when not installed.
                let code = if self.has(iccid) {
                    self.fallback = Some(iccid.clone());
                    0
                } else {
                    1
                };
                (
                    code,
                    R::setFallbackAttributeResult(sgp32::SetFallbackAttributeResult(code.into())),
                )
            }
            Op::UnsetFallback => {
                self.fallback = None;
                (
                    0,
                    R::unsetFallbackAttributeResult(sgp32::UnsetFallbackAttributeResult(0.into())),
                )
            }
            Op::List => (0, R::listProfileInfoResult(self.list())),
            Op::Other => {
                let _ = psmo;
                (127, R::enableResult(sgp32::EnableProfileResult(127.into())))
            }
        })
    }

    fn has(&self, iccid: &Iccid) -> bool {
        self.card
            .state()
            .profiles
            .iter()
            .any(|p| p.iccid == iccid.as_str())
    }

    /// listProfileInfo from the eUICC's state.
    fn list(&self) -> sgp32::ProfileInfoListResponse {
        let infos = self
            .card
            .state()
            .profiles
            .iter()
            .map(|p| {
                let mut info = sgp32::ProfileInfo::new(
                    Some(rsp::Iccid(FixedOctetString::new(p.iccid_bytes()))),
                    None,
                    Some(rsp::ProfileState(p.state.code().into())),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    false,
                    None,
                    None,
                );
                info.fallback_attribute = self
                    .fallback
                    .as_ref()
                    .is_some_and(|f| f.as_str() == p.iccid);
                info
            })
            .collect();
        sgp32::ProfileInfoListResponse::profileInfoListOk(infos)
    }

    /// An ES10c profile operation on the virtual eUICC; its result code.
    /// The eUICC signs a notification of it, which stays pending until
    /// the IPA hands it on ([`Self::hand_on_notifications`]).
    fn profile_op(
        &mut self,
        op: &Op,
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<i64, SimError> {
        let id = |iccid: &Iccid| rsp::Iccid(FixedOctetString::new(iccid.to_bcd()));
        let command = match op {
            Op::Enable(iccid, _) => encode_der(&rsp::EnableProfileRequest::new(
                rsp::EnableProfileRequestProfileIdentifier::iccid(id(iccid)),
                false,
            )),
            Op::Disable(iccid) => encode_der(&rsp::DisableProfileRequest::new(
                rsp::DisableProfileRequestProfileIdentifier::iccid(id(iccid)),
                false,
            )),
            Op::Delete(iccid) => encode_der(&rsp::DeleteProfileRequest::iccid(id(iccid))),
            _ => return Ok(127),
        }
        .map_err(|e| SimError::Device(format!("ES10c: {e}")))?;
        self.es10_signed(&command, now, rng, ec)
    }

    /// An ES10 command that may leave signed notifications: its result
    /// code. The notifications stay on the eUICC, pending, until the IPA
    /// hands them on ([`Self::hand_on_notifications`]) once the device has
    /// service again: a switch happens because the device lost its
    /// network, so it cannot send them at that moment.
    fn es10_signed(
        &mut self,
        command: &[u8],
        now: Timestamp,
        rng: &mut StdRng,
        ec: &EcCount,
    ) -> Result<i64, SimError> {
        // The eUICC numbers its notifications from a counter that only
        // grows: those signed by this command come after its last value.
        let last = self.card.state().last_seq_number;
        let answer = es10(&mut self.card, self.channel, command, now, rng)?;
        let code = result_code(&answer);
        let mut signed = 0;
        for n in &self.card.state().notifications {
            if n.seq_number > last {
                self.unsent.push((n.seq_number, now.0));
                signed += 1;
            }
        }
        self.notifications_signed += signed;
        ec.add(signed, 0, 0);
        Ok(code)
    }

    /// Notifications signed and not handed on yet.
    pub fn pending_notifications(&self) -> u64 {
        self.unsent.len() as u64
    }

    /// Notifications the eUICC signed in all.
    pub fn notifications_signed(&self) -> u64 {
        self.notifications_signed
    }

    /// The IPA hands on the notifications still pending on the eUICC (the
    /// device has service again) and removes them with NotificationSent;
    /// how long each waited since it was signed (ms). Their receiver (the
    /// profile's SM-DP+, which would verify each) is not modelled.
    pub fn hand_on_notifications(
        &mut self,
        now: Timestamp,
        rng: &mut StdRng,
    ) -> Result<Vec<i64>, SimError> {
        let mut waited = Vec::with_capacity(self.unsent.len());
        // One buffer for the commands (the encoder starts each in a
        // kilobyte).
        let mut sent = Vec::new();
        for (seq, signed_at) in std::mem::take(&mut self.unsent) {
            ferrosim_asn1::rasn::der::encode_buf(
                &rsp::NotificationSentRequest::new(Integer::from(seq)),
                &mut sent,
            )
            .map_err(|e| SimError::Device(format!("NotificationSent: {e}")))?;
            es10(&mut self.card, self.channel, &sent, now, rng)?;
            waited.push(now.0 - signed_at);
        }
        Ok(waited)
    }
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SimError {
    move |e| SimError::Setup(format!("{what}: {e}"))
}
