//! The crate's single error type.
//!
//! Every fallible operation of `ferrosim-pki` returns [`Error`]. Chain
//! verification failures each have their own variant, named for what went
//! wrong, so that the SM-DP+ and the eUICC can map them to SGP.22 status codes
//! (`8.1.3/6.1` invalid eUICC certificate chain, `8.1.4/6.1` EID outside the
//! EUM's range, ...) without matching on strings.

use std::path::PathBuf;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;

use crate::eid::Eid;
use crate::profile::{CertRole, KeyId};

/// Why parsing, loading, verifying or generating a certificate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- chain verification -------------------------------------------------
    /// The signature on a certificate does not verify with its issuer's key.
    #[error("bad signature on the {cert} certificate")]
    BadSignature {
        /// The certificate whose signature failed.
        cert: CertRole,
    },
    /// A certificate's notAfter lies before the verification time.
    #[error("the {cert} certificate expired at {}", crate::timefmt::format_time(*not_after))]
    Expired {
        /// The expired certificate.
        cert: CertRole,
        /// Its notAfter.
        not_after: SystemTime,
    },
    /// A certificate's notBefore lies after the verification time.
    #[error("the {cert} certificate is not valid before {}", crate::timefmt::format_time(*not_before))]
    NotYetValid {
        /// The certificate that is not yet valid.
        cert: CertRole,
        /// Its notBefore.
        not_before: SystemTime,
    },
    /// A certificate does not carry the certificate policy of the role it was
    /// presented for (for example a DPpb certificate presented as DPauth).
    #[error("wrong certificate policy: expected {expected}, found {}", found.map_or("no RSP role".to_string(), |r| r.to_string()))]
    WrongPolicy {
        /// The role the certificate was presented for.
        expected: CertRole,
        /// The role its policy names, if it names one.
        found: Option<CertRole>,
    },
    /// A certificate's key usage (or extended key usage) does not fit its role.
    #[error("wrong key usage on the {cert} certificate: {problem}")]
    WrongKeyUsage {
        /// The certificate with the wrong key usage.
        cert: CertRole,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A certificate that must be a CA (CI, EUM) lacks basicConstraints CA:true,
    /// or an end-entity certificate claims to be a CA.
    #[error("wrong basicConstraints on the {cert} certificate: {problem}")]
    WrongBasicConstraints {
        /// The certificate concerned.
        cert: CertRole,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The certificate names (by authorityKeyIdentifier) a CI that is not in the trust store.
    #[error("unknown CI: no trusted CI has key id {0}")]
    UnknownCi(KeyId),
    /// A certificate was not issued by the certificate presented as its issuer
    /// (authorityKeyIdentifier or issuer name do not match).
    #[error("the {cert} certificate was not issued by the {issuer} certificate ({what} mismatch)")]
    NotIssuedBy {
        /// The certificate.
        cert: CertRole,
        /// The certificate presented as its issuer.
        issuer: CertRole,
        /// Which link does not match: "key identifier" or "issuer name".
        what: &'static str,
    },
    /// The eUICC's EID is not within the EID ranges the EUM may certify.
    #[error("EID {eid} is outside the EUM's permitted EID range")]
    EidOutsideEumRange {
        /// The EID of the eUICC certificate.
        eid: Eid,
    },
    /// The EUM certificate names no EID range at all (neither nameConstraints
    /// with a serialNumber nor the permittedEins extension).
    #[error("the EUM certificate does not restrict the EIDs it may certify")]
    EumWithoutEidRange,
    /// The eUICC certificate has no subject serialNumber (the EID).
    #[error("the eUICC certificate has no EID (subject serialNumber)")]
    MissingEid,
    /// An SM-DP+ certificate has no subjectAltName registeredID (the SM-DP+ OID).
    #[error("the {cert} certificate has no SM-DP+ OID (subjectAltName registeredID)")]
    MissingSmdpOid {
        /// The certificate concerned.
        cert: CertRole,
    },
    /// A DPtls certificate has no subjectAltName DNS name or IP address.
    #[error("the DPtls certificate has no DNS name or IP address in subjectAltName")]
    MissingDnsName,
    /// A certificate of the chain is listed on its issuer's CRL.
    #[error(
        "the {cert} certificate (serial {serial}) was revoked at {}{}",
        crate::timefmt::format_time(*revoked_at),
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Revoked {
        /// The revoked certificate.
        cert: CertRole,
        /// Its serial number, upper-case hex.
        serial: String,
        /// The CRL entry's revocationDate.
        revoked_at: SystemTime,
        /// The CRL entry's reasonCode, if given.
        reason: Option<crate::crl::RevocationReason>,
    },
    /// The revocation status of a certificate is unknown (stale, incomplete
    /// or missing CRL) and the policy refuses such certificates.
    #[error("revocation status of the {cert} certificate unknown: {problem}")]
    RevocationUnknown {
        /// The certificate concerned.
        cert: CertRole,
        /// Why its status is unknown.
        problem: crate::crl::RevocationProblem,
    },
    /// A CRL could not be parsed, verified or loaded.
    #[error(transparent)]
    Crl(#[from] crate::crl::CrlError),
    /// `verify_dp_chain` was asked for a role that is not an SM-DP+ role.
    #[error("{0} is not an SM-DP+ certificate role")]
    NotSmdpRole(CertRole),

    // ----- parsing ------------------------------------------------------------
    /// The bytes are not a DER X.509 certificate (or a part of it is malformed).
    #[error("malformed {what}: {source}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: der::Error,
    },
    /// The certificate is not X.509 version 3.
    #[error("not an X.509 v3 certificate")]
    NotVersion3,
    /// The certificate is signed with something other than ecdsa-with-SHA256,
    /// or its two signature algorithm fields differ.
    #[error("unsupported signature algorithm {0} (RSP certificates use ecdsa-with-SHA256)")]
    UnsupportedSignatureAlgorithm(String),
    /// The subject public key is not an uncompressed NIST P-256 point.
    #[error("unsupported public key: {0}")]
    UnsupportedPublicKey(&'static str),
    /// A critical extension this crate does not understand (RFC 5280 requires rejecting it).
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(ObjectIdentifier),
    /// An extension appears more than once.
    #[error("duplicate extension {0}")]
    DuplicateExtension(ObjectIdentifier),
    /// A required extension is absent.
    #[error("the {cert} certificate lacks the {extension} extension")]
    MissingExtension {
        /// The certificate concerned.
        cert: CertRole,
        /// The extension's name.
        extension: &'static str,
    },
    /// A string is not a valid EID.
    #[error("invalid EID {value:?}: {problem}")]
    InvalidEid {
        /// The rejected input (truncated to 64 characters).
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A string is not a valid EID prefix (1 to 30 decimal digits).
    #[error("invalid EID prefix {0:?}: expected 1 to 30 decimal digits")]
    InvalidEidPrefix(String),
    /// Another identifier is invalid (for example a certificate key
    /// identifier that is empty or longer than 64 bytes).
    #[error(transparent)]
    InvalidId(ferrosim_ids::IdError),
    /// A string is not a valid dotted object identifier.
    #[error("invalid object identifier {0:?}")]
    InvalidOid(String),
    /// A string is not a time in the accepted forms (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`).
    #[error("invalid time {0:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")]
    InvalidTime(String),
    /// A string is not a valid DNS host name.
    #[error("invalid DNS name {0:?}")]
    InvalidDnsName(String),

    // ----- loading ------------------------------------------------------------
    /// A PEM document could not be decoded.
    #[error("PEM: {0}")]
    Pem(String),
    /// A PEM document holds no block with the expected label.
    #[error("no PEM block labelled {expected} found")]
    NoPemBlock {
        /// The label looked for, e.g. `CERTIFICATE`.
        expected: &'static str,
    },
    /// A private key could not be loaded.
    #[error("private key: {0}")]
    Key(#[from] ferrosim_crypto::Error),
    /// A private key does not belong to the certificate it was paired with.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory of a test PKI is missing or in the way.
    #[error("{}: {problem}", path.display())]
    Layout {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },

    /// A line of a revocation register file does not read.
    #[error("{}, line {line}: {problem}", path.display())]
    Register {
        /// The register file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },

    // ----- generation ---------------------------------------------------------
    /// Generation options are inconsistent (for example more eUICCs than the EID prefix leaves room for).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The certificate generator failed.
    #[error("certificate generation: {0}")]
    Generation(#[from] rcgen::Error),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// The issuer's subject name cannot be reproduced exactly in an issued
    /// certificate (multi-valued RDNs, repeated attribute types or unusual string types).
    #[error("the issuer's subject name cannot be reproduced: {0}")]
    IssuerNameNotReproducible(&'static str),
}

impl From<ferrosim_ids::IdError> for Error {
    /// EID and EID prefix errors become [`Error::InvalidEid`] and
    /// [`Error::InvalidEidPrefix`]; any other identifier error [`Error::InvalidId`].
    fn from(e: ferrosim_ids::IdError) -> Self {
        use ferrosim_ids::IdError;
        match e {
            IdError::Eid { value, problem } => Error::InvalidEid { value, problem },
            IdError::EidPrefix { value } => Error::InvalidEidPrefix(value),
            other => Error::InvalidId(other),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds [`Error::Malformed`] from a decoder error.
    pub(crate) fn malformed(what: &'static str) -> impl FnOnce(der::Error) -> Error {
        move |source| Error::Malformed { what, source }
    }
}
