//! The GSMA RSP certificate profile (SGP.22 section 4.5.2) for ferrosim.
//!
//! - [`profile`]: roles (CI, EUM, eUICC, DPauth, DPpb, DPtls, ...), their
//!   policy OIDs and key usages.
//! - [`cert`]: [`RspCertificate`], a certificate parsed once with what the
//!   protocol needs (role, key ids, public key, validity, EID, EID ranges,
//!   SM-DP+ OID, DNS names), keeping the original DER.
//! - [`eid`]: the [`Eid`] newtype (32 digits, SGP.29 check digits).
//! - [`trust`]: [`TrustStore`], the trusted CIs by key id.
//! - [`crl`]: certificate revocation lists, the [`crl::Revocation`] state a
//!   trust store consults, issuing CRLs for a hierarchy we hold the keys of.
//! - [`verify`]: chain verification, CI → EUM → eUICC and CI → SM-DP+, with
//!   one [`Error`] variant per kind of failure. Time is passed in.
//! - [`load`]: certificates and keys from PEM or DER files, so SGP.26 test
//!   certificates or production ones can be used.
//! - [`generate`]: a complete test hierarchy ([`TestPki`]) and issuing for
//!   externally held keys ([`generate::issue_for_public_key`]).
//!
//! Only NIST P-256 with ecdsa-with-SHA256 is supported (the Brainpool
//! variant of SGP.22 is not). Signature checks use `ferrosim-crypto`.
#![forbid(unsafe_code)]

pub mod cert;
pub mod crl;
pub mod eid;
pub mod error;
pub mod generate;
pub mod load;
pub mod oid;
pub mod profile;
pub mod timefmt;
pub mod trust;
pub mod verify;

pub use cert::{EidRanges, RspCertificate};
pub use const_oid::ObjectIdentifier;
pub use crl::{Crl, CrlError, Revocation, RevocationPolicy, RevocationReason, StalePolicy};
pub use eid::{Eid, EidPrefix};
pub use error::{Error, Result};
pub use generate::{
    CertificateRequest, EuiccCertificateTemplate, Issued, TestPki, TestPkiOptions,
    issue_for_public_key,
};
pub use oid::Oid;
pub use profile::{CertRole, KeyId, KeyUsage};
pub use timefmt::{format_time, parse_time};
pub use trust::TrustStore;
pub use verify::{VerifiedDp, VerifiedEuicc, verify_dp_chain, verify_euicc_chain};
