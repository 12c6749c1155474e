//! The one error type of the crate: which identifier was refused and why.

use thiserror::Error;

/// A value that is not a valid identifier (or time) of the kind asked for.
///
/// Each variant names the identifier; its fields say what is wrong. Rejected
/// input is echoed only where that helps (EIDs, times), truncated to 64
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not an EID: wrong length, a non-digit, wrong check digits or a bad coding.
    #[error("invalid EID {value:?}: {problem}")]
    Eid {
        /// The rejected input (truncated to 64 characters; hex for byte input).
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Not an EID prefix (1 to 30 decimal digits).
    #[error("invalid EID prefix {value:?}: expected 1 to 30 decimal digits")]
    EidPrefix {
        /// The rejected input (truncated to 64 characters).
        value: String,
    },
    /// An ICCID does not have 19 or 20 digits (or a body 18 or 19).
    #[error("ICCID must have {expected} digits, got {found}")]
    IccidLength {
        /// Accepted lengths, for the message.
        expected: &'static str,
        /// Number of characters received.
        found: usize,
    },
    /// An ICCID contains something other than decimal digits.
    #[error("ICCID contains a non-digit character")]
    IccidNotDigits,
    /// An ICCID's last digit is not the Luhn check digit of the others.
    #[error("ICCID check digit is {found}, the Luhn check digit is {expected}")]
    IccidCheckDigit {
        /// The Luhn digit the body calls for.
        expected: u8,
        /// The digit present.
        found: u8,
    },
    /// BCD-coded ICCID bytes do not decode to digits followed by `F` padding.
    #[error("ICCID BCD coding is invalid")]
    IccidBcd,
    /// An IMSI does not have 6 to 15 digits.
    #[error("IMSI must have 6 to 15 digits, got {found}")]
    ImsiLength {
        /// Number of digits received.
        found: usize,
    },
    /// An IMSI contains something other than decimal digits.
    #[error("IMSI contains a non-digit character")]
    ImsiNotDigits,
    /// An MNC length other than 2 or 3.
    #[error("MNC length must be 2 or 3, got {found}")]
    MncLength {
        /// The length requested.
        found: usize,
    },
    /// EF.IMSI content does not follow TS 31.102 coding.
    #[error("EF.IMSI content is invalid: {reason}")]
    ImsiCoding {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A matching id must be 1..=64 characters of `[A-Za-z0-9-]`.
    #[error("matching id must be 1..=64 characters of [A-Za-z0-9-]")]
    MatchingId,
    /// A transaction id must be 1..=16 bytes (2..=32 hex digits).
    #[error("transactionId must be 1..=16 bytes given as hex")]
    TransactionId,
    /// An operator id must be 1..=64 printable ASCII characters without spaces.
    #[error("operator id must be 1..=64 visible ASCII characters")]
    OperatorId,
    /// A CI key identifier is empty, too long or not hex.
    #[error("invalid CI key id: {problem}")]
    CiKeyId {
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A time that is not RFC 3339 text.
    #[error("invalid time {value:?}: expected RFC 3339 (e.g. 2026-01-31T12:00:00Z)")]
    Timestamp {
        /// The rejected input (truncated to 64 characters).
        value: String,
    },
}

/// At most 64 characters of rejected input, for error messages.
pub(crate) fn echo(value: &str) -> String {
    value.chars().take(64).collect()
}
