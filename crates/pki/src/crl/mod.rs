//! Certificate revocation for the GSMA RSP hierarchy (SGP.22 section 4.5.2
//! and RFC 5280): CRLs issued by the CI (for EUM, DPauth, DPpb, DPtls
//! certificates) and by each EUM (for its eUICC certificates).
//!
//! - [`entry`]: [`CrlNumber`], [`RevocationReason`], [`RevokedEntry`].
//! - [`parse`]: [`Crl`], one parsed `CertificateList` (version 2,
//!   ecdsa-with-SHA256, nextUpdate, authorityKeyIdentifier, cRLNumber,
//!   issuingDistributionPoint scope, the RSP partial-CRL extensions).
//! - [`set`]: [`CrlSet`], the CRLs in force: one stream per issuer and
//!   scope, the newest cRLNumber wins, partial CRLs assembled until all
//!   parts are in.
//! - [`revocation`]: [`Revocation`], the shared revocation state a
//!   [`crate::TrustStore`] consults during chain verification, with the
//!   [`RevocationPolicy`] for CRLs that are stale, incomplete or could not be
//!   fetched, and the sans-IO fetch schedule (`poll_fetch` / `handle_fetch`).
//! - [`issue`]: issuing signed CRLs for a hierarchy whose keys we hold.
//! - [`authority`]: [`authority::CrlAuthority`], the CI or EUM of a
//!   `ferrosim pki init` directory revoking certificates and issuing CRLs.
//! - [`register`]: the revocation register of a `ferrosim pki init` directory.
//! - `fetch` (feature `fetch`): the HTTP driver that fetches due CRLs.
//!
//! Nothing here reads the clock or the network: CRL bytes and `now` come in.

pub mod authority;
pub mod entry;
pub mod issue;
pub mod parse;
pub mod register;
pub mod revocation;
pub mod set;

#[cfg(feature = "fetch")]
pub mod fetch;

use const_oid::ObjectIdentifier;

pub use parse::{Crl, CrlNumber, CrlPart, CrlScope, RevocationReason, RevokedEntry};
pub use revocation::{
    FetchRequest, Revocation, RevocationPolicy, RevocationProblem, RevocationWarning, StalePolicy,
};
pub use set::{CrlSet, CrlStatus, LoadOutcome};

/// Why a CRL could not be parsed, verified or put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The bytes are not a DER `CertificateList`.
    #[error("malformed CRL: {0}")]
    Malformed(#[source] der::Error),
    /// A PEM document could not be read or holds no `X509 CRL` block.
    #[error("CRL PEM: {0}")]
    Pem(String),
    /// The CRL is not version 2.
    #[error("not a version 2 CRL")]
    NotVersion2,
    /// The CRL is not signed with ecdsa-with-SHA256 (or its two algorithm fields differ).
    #[error("unsupported CRL signature algorithm {0} (RSP CRLs use ecdsa-with-SHA256)")]
    UnsupportedSignatureAlgorithm(String),
    /// nextUpdate is absent (RFC 5280 and SGP.22 require it).
    #[error("the CRL has no nextUpdate")]
    MissingNextUpdate,
    /// A required CRL extension is absent.
    #[error("the CRL lacks {0}")]
    MissingExtension(&'static str),
    /// A CRL or CRL entry extension does not decode.
    #[error("malformed CRL extension {0}: {1}")]
    BadExtension(&'static str, #[source] der::Error),
    /// An extension appears twice.
    #[error("duplicate CRL extension {0}")]
    DuplicateExtension(ObjectIdentifier),
    /// A critical extension this crate does not understand.
    #[error("unsupported critical CRL extension {0}")]
    UnsupportedCriticalExtension(ObjectIdentifier),
    /// A delta CRL (deltaCRLIndicator): SGP.22 does not use them.
    #[error("delta CRLs are not supported")]
    DeltaCrl,
    /// An issuingDistributionPoint or entry extension RSP does not use.
    #[error("unsupported CRL scope: {0}")]
    UnsupportedScope(&'static str),
    /// The CRL contradicts itself.
    #[error("inconsistent CRL: {0}")]
    Inconsistent(&'static str),
    /// The CRL names another issuer than the certificate it was checked against.
    #[error("the CRL was not issued by this CA ({0} mismatch)")]
    WrongIssuer(&'static str),
    /// No trusted or known CA has the CRL's authority key id.
    #[error("no known CA has key id {0}, the CRL's issuer")]
    UnknownIssuer(crate::profile::KeyId),
    /// The issuer's keyUsage lacks cRLSign.
    #[error("the issuing CA's key usage does not include cRLSign")]
    IssuerMayNotSignCrls,
    /// The signature does not verify with the issuer's key.
    #[error("bad signature on the CRL")]
    BadSignature,
    /// A CRL with the same or a higher cRLNumber is already in force.
    #[error("CRL number {offered} is not newer than the {loaded} already loaded")]
    NotNewer {
        /// The number in force.
        loaded: CrlNumber,
        /// The number offered.
        offered: CrlNumber,
    },
    /// Revocation checking is not enabled on the trust store.
    #[error("revocation checking is not enabled")]
    NotEnabled,
    /// Fetching the CRL failed (transport, HTTP status, size, timeout).
    #[error("fetching {url}: {problem}")]
    Fetch {
        /// The distribution point.
        url: String,
        /// What went wrong.
        problem: String,
    },
}

impl CrlError {
    /// The SGP.22 `LoadCRLResponseError` code an eUICC answers LoadCRL with:
    /// invalidSignature(1), invalidCRLFormat(2), verificationKeyNotFound(4),
    /// fresherCrlAlreadyLoaded(5), undefinedError(127).
    pub fn load_crl_error_code(&self) -> u8 {
        match self {
            Self::BadSignature | Self::WrongIssuer(_) | Self::IssuerMayNotSignCrls => 1,
            Self::Malformed(_)
            | Self::Pem(_)
            | Self::NotVersion2
            | Self::UnsupportedSignatureAlgorithm(_)
            | Self::MissingNextUpdate
            | Self::MissingExtension(_)
            | Self::BadExtension(..)
            | Self::DuplicateExtension(_)
            | Self::UnsupportedCriticalExtension(_)
            | Self::DeltaCrl
            | Self::UnsupportedScope(_)
            | Self::Inconsistent(_) => 2,
            Self::UnknownIssuer(_) => 4,
            Self::NotNewer { .. } => 5,
            Self::NotEnabled | Self::Fetch { .. } => 127,
        }
    }
}
