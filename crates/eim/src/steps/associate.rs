//! Associating an eUICC with this eIM, and the operator's marks on it.
//!
//! The association records what the eUICC holds as this eIM's configuration
//! (`EimConfigurationData`: eIM id, counter value, association token) and
//! what the eIM verified about the eUICC: its certificate chain up to a
//! trusted CI, the EID it names, and the public key that signs its results.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_pki::verify::verify_parsed_euicc_chain;
use ferrosim_pki::{RspCertificate, TrustStore, verify_euicc_chain};

use super::Step;
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::ids::{Counter, Eid, EimId};
use crate::record::{Association, DeviceRecord, EuiccData, ProfileSnapshot};
use crate::store::{DeviceWrite, EimChanges, Versioned};

/// What the operator (or the device's bootstrap) knows about a new device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationRequest {
    /// The device.
    pub eid: Eid,
    /// CERT.EUM.ECDSA (DER).
    pub eum_certificate: Vec<u8>,
    /// CERT.EUICC.ECDSA (DER).
    pub euicc_certificate: Vec<u8>,
    /// The counter value of this eIM in the eUICC (its
    /// `EimConfigurationData.counterValue`): the first package carries the
    /// next one.
    pub counter: Counter,
    /// The association token, if the eUICC has one for this eIM.
    pub association_token: Option<i64>,
    /// The SGP.32 version the eUICC implements (from its EUICCInfo2
    /// `iotSpecificInfo.iotVersion`, or the manufacturer's data).
    pub euicc_version: Sgp32Version,
    /// The IPA emulates the IoT functions on a consumer eUICC (its results
    /// are unsigned).
    pub emulated: bool,
}

/// Creates the association after verifying the eUICC's certificate chain
/// (CI → EUM → eUICC, the EID inside the EUM's range) and that it names the
/// requested EID.
pub fn associate(
    existing: Option<&Versioned<DeviceRecord>>,
    request: AssociationRequest,
    eim_id: &EimId,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Step<()>, EimError> {
    associate_parsed(existing, request, None, eim_id, trust, now)
}

/// [`associate`] with the eUICC certificate already parsed by its caller
/// (`parsed`: used only when its DER is the request's
/// `euicc_certificate`, else that is parsed), so that a caller that just
/// parsed it (the simulator's factory, which issued it) does not pay for
/// the parse twice. The checks are the same: the chain's signatures are
/// verified and the EID compared.
pub fn associate_parsed(
    existing: Option<&Versioned<DeviceRecord>>,
    request: AssociationRequest,
    parsed: Option<RspCertificate>,
    eim_id: &EimId,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Step<()>, EimError> {
    if existing.is_some() {
        return Err(EimError::AlreadyAssociated(request.eid));
    }
    let record = fresh_record(request, parsed, eim_id, trust, now)?;
    let changes = EimChanges {
        device: Some(DeviceWrite::Insert(record)),
        ..EimChanges::default()
    };
    Ok(Step::new(changes, ()))
}

/// Associates a device again after its release was confirmed (`released`:
/// the eUICC's deleteEim result arrived, see
/// [`crate::steps::sanitize::report`]). The new association replaces the old
/// one; item ids go on from where they were (the old results stay stored
/// under theirs) and the sanitization is kept, marked re-associated.
pub fn reassociate(
    existing: &Versioned<DeviceRecord>,
    released: bool,
    request: AssociationRequest,
    parsed: Option<RspCertificate>,
    eim_id: &EimId,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Step<()>, EimError> {
    let old = &existing.record;
    if !released {
        return Err(if old.release_ordered() {
            EimError::Released(old.eid)
        } else {
            EimError::AlreadyAssociated(old.eid)
        });
    }
    let mut record = fresh_record(request, parsed, eim_id, trust, now)?;
    record.next_item = old.next_item;
    record.sanitization = old.sanitization.clone().map(|mut s| {
        s.reassociated_at = Some(now);
        s
    });
    Ok(Step::new(update(existing, record), ()))
}

/// A new device record after verifying the request's certificates (the
/// eUICC's as `parsed` when that is the request's, see
/// [`associate_parsed`]).
fn fresh_record(
    request: AssociationRequest,
    parsed: Option<RspCertificate>,
    eim_id: &EimId,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<DeviceRecord, EimError> {
    let now_time = now.to_system_time();
    let verified = match parsed {
        Some(euicc) if euicc.der() == request.euicc_certificate.as_slice() => {
            verify_parsed_euicc_chain(trust, &request.eum_certificate, euicc, now_time)?
        }
        _ => verify_euicc_chain(
            trust,
            &request.eum_certificate,
            &request.euicc_certificate,
            now_time,
        )?,
    };
    if verified.eid != request.eid {
        return Err(EimError::CertificateForOtherEid {
            requested: request.eid,
            certificate: verified.eid,
        });
    }
    Ok(DeviceRecord {
        eid: request.eid,
        association: Association {
            eim_id: eim_id.clone(),
            counter: request.counter,
            association_token: request.association_token,
            euicc_version: request.euicc_version,
            euicc_certificate: request.euicc_certificate,
            eum_certificate: request.eum_certificate,
            euicc_public_key: verified.public_key_sec1,
        },
        emulated: request.emulated,
        ipa_version: request.euicc_version,
        queue: Vec::new(),
        next_item: 1,
        pending_acks: Vec::new(),
        profiles: ProfileSnapshot::default(),
        euicc: EuiccData::default(),
        last_poll: None,
        created_at: now,
        rollback: None,
        sanitization: None,
    })
}

/// Marks (or unmarks) a device as an IPA emulating the IoT functions on a
/// consumer eUICC, whose package results are unsigned.
pub fn set_emulated(device: &Versioned<DeviceRecord>, emulated: bool) -> Step<()> {
    let mut record = device.record.clone();
    record.emulated = emulated;
    Step::new(update(device, record), ())
}

/// The changes rewriting a device record read at `device.version`.
pub(crate) fn update(device: &Versioned<DeviceRecord>, record: DeviceRecord) -> EimChanges {
    EimChanges {
        device: Some(DeviceWrite::Update {
            expected: device.version,
            record,
        }),
        ..EimChanges::default()
    }
}
