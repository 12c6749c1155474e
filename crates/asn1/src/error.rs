//! The crate's error type.

use thiserror::Error;

use crate::tlv::TlvError;

/// Why bytes could not be turned into a value, or a value into bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The bytes are not a valid DER/BER encoding of the expected type.
    #[error("cannot decode {type_name}: {reason}")]
    Decode {
        /// The ASN.1 type that was being decoded.
        type_name: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// The value cannot be encoded (for example a size constraint is violated).
    #[error("cannot encode {type_name}: {reason}")]
    Encode {
        /// The ASN.1 type that was being encoded.
        type_name: &'static str,
        /// The encoder's explanation.
        reason: String,
    },
    /// A complete value was decoded but bytes were left after it.
    #[error("{count} trailing byte(s) after {type_name}")]
    TrailingBytes {
        /// The ASN.1 type that was decoded.
        type_name: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// The raw TLV structure is malformed or lacks an expected element.
    #[error(transparent)]
    Tlv(#[from] TlvError),
    /// A signature element does not have the raw `r || s` length (64 bytes).
    #[error("signature {tag:#X} has {len} bytes, expected 64")]
    SignatureLength {
        /// Tag of the signature element.
        tag: u32,
        /// Its actual length.
        len: usize,
    },
    /// A CHOICE carried the error alternative where the signed success
    /// alternative was expected (for example `authenticateResponseError`).
    #[error("{message} carries its error alternative (tag {tag:#X})")]
    ErrorAlternative {
        /// The message that was inspected.
        message: &'static str,
        /// The tag of the alternative found.
        tag: u32,
    },
    /// A value of one SGP.32 version has no form in the version it must be
    /// written in (for example a fallback PSMO for a v1.0 eUICC).
    #[error("{what} cannot be expressed in SGP.32 {version}")]
    Unrepresentable {
        /// What could not be converted.
        what: &'static str,
        /// The target version (`v1.0`, `v1.2`).
        version: &'static str,
    },
    /// A base64 field (ES9+ JSON binding) is not valid base64.
    #[error("invalid base64 in {field}")]
    Base64 {
        /// The field name.
        field: &'static str,
    },
}
