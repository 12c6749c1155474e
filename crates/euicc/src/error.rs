//! The crate's error type: what can go wrong outside the APDU path.
//!
//! The APDU entry point never fails: every problem there becomes a status
//! word or an SGP.22 error response (see [`crate::codes`]). [`Error`] covers
//! the rest: loading an identity and reading or writing the state file.

use std::path::PathBuf;

use ferrosim_pki::KeyId;

/// Why an identity or a state file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key file could not be read or parsed.
    #[error("{what}: {source}")]
    Pki {
        /// Which file or part of the identity.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: ferrosim_pki::Error,
    },
    /// A file given for one part of the identity cannot be used for it.
    #[error("{what} {}: {source}", path.display())]
    File {
        /// Which part of the identity the file was given for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: Box<Error>,
    },
    /// A test PKI directory holds several eUICCs and none was chosen.
    #[error(
        "{} holds {} eUICC certificates; choose one by EID (--eid): {}",
        dir.display(),
        eids.len(),
        eids.join(", ")
    )]
    SeveralEuiccs {
        /// The `eUICC` directory.
        dir: PathBuf,
        /// The EIDs found, in order.
        eids: Vec<String>,
    },
    /// A certificate does not have the role it was given for.
    #[error("{what} is not a certificate of role {expected}")]
    WrongRole {
        /// Which certificate.
        what: &'static str,
        /// The role it should have.
        expected: ferrosim_pki::CertRole,
    },
    /// The eUICC private key does not belong to the eUICC certificate.
    #[error("the eUICC private key does not match the eUICC certificate")]
    KeyMismatch,
    /// The eUICC certificate does not chain to the EUM and a trusted CI, or
    /// its EID is outside the EUM's range.
    #[error("the eUICC identity does not verify: {0}")]
    Chain(#[source] ferrosim_pki::Error),
    /// The EUM certificate names a CI that is not among the given CI certificates.
    #[error("the CI above the EUM (key id {0}) is not among the trusted CI certificates")]
    SigningCiMissing(KeyId),
    /// No CI certificate was given.
    #[error("at least one trusted CI certificate is needed")]
    NoCi,
    /// A test PKI directory lacks the files of an eUICC identity.
    #[error("{}: {problem}", path.display())]
    Layout {
        /// The path concerned.
        path: PathBuf,
        /// What is missing or wrong.
        problem: String,
    },
    /// The state file could not be read or written.
    #[error("state file {}: {source}", path.display())]
    StateIo {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is of a format version this build does not read.
    #[error("state file {}: format version {found} is not one this build reads (1 to {})", path.display(), crate::state::STATE_VERSION)]
    StateVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// The state file is valid JSON but holds something a card cannot have
    /// stored (a profile whose metadata does not decode, for example).
    #[error("state file {}: {problem}", path.display())]
    StateContent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The state file is not valid eUICC state JSON.
    #[error("state file {}: {source}", path.display())]
    StateFormat {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}
