//! The crate's single error type.
//!
//! Every fallible operation of `ferrosim-crypto` returns [`enum@Error`]. Variants are
//! named for what went wrong so callers (SM-DP+, eUICC) can map them to the
//! right SGP.22 status code without string matching.

use thiserror::Error;

/// Why a cryptographic operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A well-formed signature did not verify against the key and message.
    #[error("signature verification failed")]
    BadSignature,
    /// A signature is not in the expected encoding (raw `r||s`, DER or `5F37`).
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    /// A public key is not a valid SEC1-encoded point on the expected curve.
    #[error("invalid public key point: {0}")]
    InvalidPoint(&'static str),
    /// A private key could not be parsed or does not belong to P-256.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(&'static str),
    /// A PEM document could not be decoded or carries an unexpected label.
    #[error("PEM: {0}")]
    Pem(String),
    /// The cryptographic backend reported a failure that is not the input's fault
    /// (random generation, key generation, internal error).
    #[error("cryptographic backend failure during {0}")]
    Backend(&'static str),
    /// A key was given with the wrong length.
    #[error("invalid key length: expected {expected} bytes, got {actual}")]
    InvalidKeyLength {
        /// Length the operation requires.
        expected: usize,
        /// Length that was supplied.
        actual: usize,
    },
    /// A parameter is outside what the operation supports (for example a
    /// host identifier longer than 255 bytes).
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A secured segment would be longer than the 1020-byte limit.
    #[error("segment of {len} bytes exceeds the {max}-byte limit")]
    SegmentTooLong {
        /// Length the segment would have (tag, length, data and MAC).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A segment's C-MAC does not match (tampered data, wrong key, wrong chaining value).
    #[error("segment MAC mismatch")]
    MacMismatch,
    /// Decrypted data does not end with valid `80 00..` padding, or ciphertext
    /// is not a whole number of AES blocks.
    #[error("bad padding in decrypted segment")]
    BadPadding,
    /// A segment is not a well-formed TLV with a MAC (truncated, wrong length, trailing bytes).
    #[error("malformed segment: {0}")]
    MalformedSegment(&'static str),
    /// A segment carries a different tag from the one the caller expected.
    #[error("unexpected segment tag {found:#X}, expected {expected:#X}")]
    UnexpectedTag {
        /// Tag the caller required.
        expected: u32,
        /// Tag found in the segment.
        found: u32,
    },
    /// The block counter would overflow (more than 2^128 - 1 segments).
    #[error("BSP block counter exhausted")]
    CounterExhausted,
    /// The key source cannot perform this operation (for example a token without ECDH).
    #[error("unsupported by this key source: {0}")]
    Unsupported(&'static str),
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {operation}: {source}")]
    Pkcs11 {
        /// What the crate was doing when the call failed.
        operation: &'static str,
        /// The error reported by the PKCS#11 module or wrapper.
        #[source]
        source: cryptoki::error::Error,
    },
    /// A PKCS#11 object or token the caller named does not exist or is not usable.
    #[error("PKCS#11: {0}")]
    Pkcs11Object(String),
    /// An I/O error while reading a key file.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
