//! eUICC packages as the operator asks for them, and their signing.
//!
//! An [`Operation`] is a Profile State Management Operation (PSMO), an
//! [`EimOperation`] an eIM Configuration Operation (eCO); one package holds
//! either kind ([`PackageContent`]). [`sign_package`] builds the
//! `EuiccPackageSigned`, signs its DER followed by the association token with
//! the eIM key and returns the `EuiccPackageRequest` (BF51) as it will be
//! delivered: the queue keeps exactly these bytes.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::signed::sgp32::{eim_signature_input, euicc_package_request_from_parts};
use ferrosim_asn1::{encode_der, rsp, sgp32};
use ferrosim_crypto::KeySource;

use crate::error::EimError;
use crate::ids::{Counter, Eid, EimId, EimTransactionId, Iccid};
use crate::record::Association;

/// A Profile State Management Operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Enable a profile; with `rollback`, the IPA may return to the previous
    /// one (ProfileRollback) if the new one does not connect.
    Enable {
        /// The profile.
        iccid: Iccid,
        /// Grant ProfileRollback.
        rollback: bool,
    },
    /// Disable a profile.
    Disable {
        /// The profile.
        iccid: Iccid,
    },
    /// Delete a profile.
    Delete {
        /// The profile.
        iccid: Iccid,
    },
    /// List the profiles (ProfileInfoListRequest without criteria: every
    /// profile, the eUICC's default data objects).
    ListProfiles,
    /// Read the Rules Authorisation Table.
    GetRat,
    /// Configure immediate profile enabling.
    ConfigureImmediateEnable {
        /// Allow immediate enabling.
        enable: bool,
        /// The default SM-DP+ address to use for it.
        default_smdp_address: Option<String>,
    },
    /// Give a profile the fallback attribute (SGP.32 v1.2).
    SetFallback {
        /// The profile.
        iccid: Iccid,
    },
    /// Remove the fallback attribute (SGP.32 v1.2).
    UnsetFallback,
    /// Set the default SM-DP+ address (SGP.32 v1.2).
    SetDefaultDpAddress {
        /// The address (FQDN).
        address: String,
    },
}

impl Operation {
    /// The PSMO's name, as logged.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enable { .. } => "enable",
            Self::Disable { .. } => "disable",
            Self::Delete { .. } => "delete",
            Self::ListProfiles => "listProfileInfo",
            Self::GetRat => "getRAT",
            Self::ConfigureImmediateEnable { .. } => "configureImmediateEnable",
            Self::SetFallback { .. } => "setFallbackAttribute",
            Self::UnsetFallback => "unsetFallbackAttribute",
            Self::SetDefaultDpAddress { .. } => "setDefaultDpAddress",
        }
    }

    /// Whether the PSMO only exists from SGP.32 v1.2 on.
    pub fn needs_v1_2(&self) -> bool {
        matches!(
            self,
            Self::SetFallback { .. } | Self::UnsetFallback | Self::SetDefaultDpAddress { .. }
        )
    }

    fn to_asn1(&self) -> sgp32::Psmo {
        match self {
            Self::Enable { iccid, rollback } => sgp32::Psmo::enable(sgp32::PsmoEnable::new(
                asn1_iccid(iccid),
                rollback.then_some(()),
            )),
            Self::Disable { iccid } => {
                sgp32::Psmo::disable(sgp32::PsmoDisable::new(asn1_iccid(iccid)))
            }
            Self::Delete { iccid } => {
                sgp32::Psmo::delete(sgp32::PsmoDelete::new(asn1_iccid(iccid)))
            }
            Self::ListProfiles => {
                sgp32::Psmo::listProfileInfo(rsp::ProfileInfoListRequest::new(None, None))
            }
            Self::GetRat => sgp32::Psmo::getRAT(sgp32::PsmoGetRAT::new()),
            Self::ConfigureImmediateEnable {
                enable,
                default_smdp_address,
            } => sgp32::Psmo::configureImmediateEnable(sgp32::PsmoConfigureImmediateEnable::new(
                enable.then_some(()),
                None,
                default_smdp_address.clone(),
            )),
            Self::SetFallback { iccid } => sgp32::Psmo::setFallbackAttribute(
                sgp32::PsmoSetFallbackAttribute::new(asn1_iccid(iccid)),
            ),
            Self::UnsetFallback => {
                sgp32::Psmo::unsetFallbackAttribute(sgp32::PsmoUnsetFallbackAttribute::new())
            }
            Self::SetDefaultDpAddress { address } => sgp32::Psmo::setDefaultDpAddress(
                sgp32::SetDefaultDpAddressRequest::new(address.clone()),
            ),
        }
    }
}

/// An eIM Configuration Operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EimOperation {
    /// Add an eIM to the eUICC.
    AddEim(sgp32::EimConfigurationData),
    /// Delete an eIM from the eUICC.
    DeleteEim(EimId),
    /// Update an eIM's configuration.
    UpdateEim(sgp32::EimConfigurationData),
    /// List the eIMs the eUICC knows.
    ListEim,
}

impl EimOperation {
    fn to_asn1(&self) -> sgp32::Eco {
        match self {
            Self::AddEim(config) => sgp32::Eco::addEim(config.clone()),
            Self::DeleteEim(id) => {
                sgp32::Eco::deleteEim(sgp32::EcoDeleteEim::new(id.as_str().to_owned()))
            }
            Self::UpdateEim(config) => sgp32::Eco::updateEim(config.clone()),
            Self::ListEim => sgp32::Eco::listEim(sgp32::EcoListEim::new()),
        }
    }
}

/// What one package asks: PSMOs or eCOs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageContent {
    /// Profile State Management Operations.
    Psmos(Vec<Operation>),
    /// eIM Configuration Operations.
    Ecos(Vec<EimOperation>),
}

impl PackageContent {
    /// Refuses an empty package, and v1.2-only PSMOs for a v1.0 eUICC.
    pub fn check(&self, euicc_version: Sgp32Version) -> Result<(), EimError> {
        let empty = match self {
            Self::Psmos(ops) => ops.is_empty(),
            Self::Ecos(ops) => ops.is_empty(),
        };
        if empty {
            return Err(EimError::EmptyPackage);
        }
        if let (Self::Psmos(ops), Sgp32Version::V1_0) = (self, euicc_version)
            && let Some(op) = ops.iter().find(|op| op.needs_v1_2())
        {
            return Err(EimError::NotSupportedByDevice {
                operation: op.name(),
                version: euicc_version.as_str(),
            });
        }
        Ok(())
    }

    fn to_asn1(&self) -> sgp32::EuiccPackage {
        match self {
            Self::Psmos(ops) => {
                sgp32::EuiccPackage::psmoList(ops.iter().map(Operation::to_asn1).collect())
            }
            Self::Ecos(ops) => {
                sgp32::EuiccPackage::ecoList(ops.iter().map(EimOperation::to_asn1).collect())
            }
        }
    }
}

/// Builds and signs one package: `EuiccPackageSigned {eimId, eid, counter,
/// eimTransactionId, package}`, `eimSignature` over its DER followed by the
/// association token TLV (`84`), assembled as `EuiccPackageRequest` (BF51).
pub fn sign_package(
    association: &Association,
    eid: &Eid,
    counter: Counter,
    transaction_id: EimTransactionId,
    content: &PackageContent,
    key: &dyn KeySource,
) -> Result<Vec<u8>, EimError> {
    let signed = sgp32::EuiccPackageSigned::new(
        association.eim_id.as_str().to_owned(),
        rsp::Octet16(FixedOctetString::new(eid.to_bcd())),
        Integer::from(counter.get()),
        Some(transaction_id.to_asn1()),
        content.to_asn1(),
    );
    let der = encode_der(&signed)?;
    let token = association.association_token.map(Integer::from);
    let input = eim_signature_input(&der, token.as_ref())?;
    let signature = key.sign_raw(&input)?;
    Ok(euicc_package_request_from_parts(&der, &signature))
}

fn asn1_iccid(iccid: &Iccid) -> rsp::Iccid {
    rsp::Iccid(FixedOctetString::new(iccid.to_bcd()))
}
