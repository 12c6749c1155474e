//! What a package tells the SM-DP+ for the profile metadata it sends with
//! StoreMetadata (SGP.22 `StoreMetadataRequest`): the ICCID, a default
//! profile name and the profile class. The service provider name shown to
//! the user, the icon and the profile policy rules are operator settings
//! of the profile type, not package content.

use crate::error::Error;
use crate::identity::Iccid;
use crate::package::ProfilePackage;
use crate::summary::ProfileSummary;

pub use ferrosim_asn1::values::ProfileClass;

/// Metadata defaults derived from a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataDefaults {
    /// The package's ICCID (header), Luhn-checked.
    pub iccid: Iccid,
    /// Default profile name: the header `profileType`, or the ICCID when absent.
    pub profile_name: String,
    /// Profile class: operational (test and provisioning profiles are
    /// configured explicitly by the operator).
    pub profile_class: ProfileClass,
    /// The service provider name of EF.SPN, a hint for the operator's
    /// configuration when the package sets one.
    pub spn_hint: Option<String>,
}

impl ProfilePackage {
    /// Extracts the metadata defaults for StoreMetadata.
    pub fn metadata_defaults(&self) -> Result<MetadataDefaults, Error> {
        let iccid = self.header().iccid()?;
        let summary = ProfileSummary::decode(self)?;
        let profile_name = self
            .header()
            .profile_type
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| iccid.to_string());
        Ok(MetadataDefaults {
            iccid,
            profile_name,
            profile_class: ProfileClass::Operational,
            spn_hint: summary.spn,
        })
    }

    /// Decodes the provisioning content of the package (see [`ProfileSummary`]).
    pub fn summary(&self) -> Result<ProfileSummary, Error> {
        ProfileSummary::decode(self)
    }
}
