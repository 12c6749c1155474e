//! The one error type of the crate: every way a package, a personalisation
//! value or a batch file can be wrong, each with its own variant.

use ferrosim_asn1::tlv::TlvError;
use thiserror::Error;

use crate::element::ElementKind;

/// Why a profile package, a personalisation value or a batch file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The package holds no profile element at all.
    #[error("empty profile package")]
    EmptyPackage,
    /// The bytes at `offset` are not a well-formed BER-TLV.
    #[error("malformed TLV at offset {offset}: {source}")]
    MalformedTlv {
        /// Offset of the element (or nested value) that failed, from the package start.
        offset: usize,
        /// What the TLV reader found wrong.
        source: TlvError,
    },
    /// Constructed values nest deeper than any SAIP structure does.
    #[error("TLV nesting deeper than {limit} levels at offset {offset}")]
    NestingTooDeep {
        /// Offset of the element where the limit was hit.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// The first profile element is not the `ProfileHeader`.
    #[error("the first profile element must be the header, found tag {found:#X}")]
    HeaderNotFirst {
        /// Tag of the first element.
        found: u32,
    },
    /// A second `ProfileHeader` appears after the first element.
    #[error("duplicate profile header at element {index}")]
    DuplicateHeader {
        /// Index of the extra header.
        index: usize,
    },
    /// The last profile element is not `end`.
    #[error("the last profile element must be 'end', found tag {found:#X}")]
    EndNotLast {
        /// Tag of the last element.
        found: u32,
    },
    /// An `end` element appears before the last position.
    #[error("'end' element at index {index} is not the last element")]
    EarlyEnd {
        /// Index of the premature `end`.
        index: usize,
    },
    /// A top-level value is not a `ProfileElement` alternative (not a
    /// constructed context-specific tag).
    #[error("value {index} (tag {tag:#X}) is not a profile element")]
    NotAProfileElement {
        /// Index of the element.
        index: usize,
        /// Its tag.
        tag: u32,
    },
    /// An element does not decode as the `PEDefinitions` type of its kind.
    #[error("element {index} ({kind}) does not match PEDefinitions: {reason}")]
    Schema {
        /// Index of the element.
        index: usize,
        /// Its kind.
        kind: ElementKind,
        /// The decoder's explanation.
        reason: String,
    },
    /// A mandatory field of a profile element is absent.
    #[error("{element}: missing field {field}")]
    MissingField {
        /// The element kind.
        element: ElementKind,
        /// The ASN.1 field name.
        field: &'static str,
    },
    /// A field of a profile element has a value the definition does not allow.
    #[error("{element}: invalid field {field}: {reason}")]
    InvalidField {
        /// The element kind.
        element: ElementKind,
        /// The ASN.1 field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `File` value of a template element is not valid.
    #[error("invalid File at offset {offset}: {reason}")]
    MalformedFile {
        /// Offset of the offending entry from the package start.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
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
    /// Another identifier is invalid (one this crate does not parse itself).
    #[error(transparent)]
    InvalidId(ferrosim_ids::IdError),
    /// A key (K, OPc) has the wrong number of bytes.
    #[error("{field} must be {expected} bytes, got {found}")]
    KeyLength {
        /// Which value.
        field: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// A value that must be hexadecimal is not.
    #[error("{field} is not valid hexadecimal")]
    InvalidHex {
        /// Which value.
        field: &'static str,
    },
    /// A PIN, PUK or ADM value has the wrong length.
    #[error("{field} must be {expected}, got {found} character(s)")]
    CodeLength {
        /// Which code.
        field: &'static str,
        /// Accepted lengths, for the message.
        expected: &'static str,
        /// Characters received.
        found: usize,
    },
    /// A PIN or PUK contains something other than decimal digits.
    #[error("{field} must contain only decimal digits")]
    CodeNotDigits {
        /// Which code.
        field: &'static str,
    },
    /// The package has no place for a value the personalisation sets.
    #[error("the package has no {what} to personalise")]
    NotInPackage {
        /// What was looked for.
        what: &'static str,
    },
    /// The package's key field has another length than the value supplied.
    #[error("package {field} is {package} bytes, personalisation value is {supplied} bytes")]
    KeyLengthMismatch {
        /// Which key (K or OPc).
        field: &'static str,
        /// Length in the package.
        package: usize,
        /// Length supplied.
        supplied: usize,
    },
    /// A patch does not land on a TLV of the package, or lands inside
    /// another patched TLV (a defect of the personaliser, not of the input).
    #[error("patch target at offset {offset} is not a distinct TLV of the package")]
    PatchTarget {
        /// Offset of the offending target.
        offset: usize,
    },
    /// The batch file's header row is missing or names an unknown column.
    #[error("batch header: {reason}")]
    BatchHeader {
        /// What is wrong with the header.
        reason: String,
    },
    /// A required column is absent from the batch header.
    #[error("batch header lacks required column '{column}'")]
    BatchMissingColumn {
        /// The column name.
        column: &'static str,
    },
    /// The CSV layer could not read a row (bad quoting, invalid UTF-8, ...).
    #[error("batch line {line}: {reason}")]
    BatchSyntax {
        /// 1-based line number.
        line: u64,
        /// The CSV reader's explanation.
        reason: String,
    },
    /// A value in a batch row is invalid.
    #[error("batch line {line}, column '{column}': {source}")]
    BatchValue {
        /// 1-based line number.
        line: u64,
        /// The column name.
        column: &'static str,
        /// Why the value was refused.
        source: Box<Error>,
    },
    /// A required value is empty in a batch row.
    #[error("batch line {line}: column '{column}' is empty")]
    BatchEmptyValue {
        /// 1-based line number.
        line: u64,
        /// The column name.
        column: &'static str,
    },
    /// The same ICCID appears twice in one batch.
    #[error("batch line {line}: ICCID already used on line {first_line}")]
    BatchDuplicateIccid {
        /// Line of the repeat.
        line: u64,
        /// Line where it first appeared.
        first_line: u64,
    },
    /// The same IMSI appears twice in one batch.
    #[error("batch line {line}: IMSI already used on line {first_line}")]
    BatchDuplicateImsi {
        /// Line of the repeat.
        line: u64,
        /// Line where it first appeared.
        first_line: u64,
    },
}

impl From<ferrosim_ids::IdError> for Error {
    /// ICCID and IMSI errors become this crate's variants of the same name
    /// (`IccidLength`, `IccidCheckDigit`, `ImsiCoding`, ...); any other
    /// identifier error [`Error::InvalidId`].
    fn from(e: ferrosim_ids::IdError) -> Self {
        use ferrosim_ids::IdError as I;
        match e {
            I::IccidLength { expected, found } => Error::IccidLength { expected, found },
            I::IccidNotDigits => Error::IccidNotDigits,
            I::IccidCheckDigit { expected, found } => Error::IccidCheckDigit { expected, found },
            I::IccidBcd => Error::IccidBcd,
            I::ImsiLength { found } => Error::ImsiLength { found },
            I::ImsiNotDigits => Error::ImsiNotDigits,
            I::MncLength { found } => Error::MncLength { found },
            I::ImsiCoding { reason } => Error::ImsiCoding { reason },
            other => Error::InvalidId(other),
        }
    }
}

impl Error {
    /// Wraps a TLV reader error with the package offset where it happened.
    pub(crate) fn tlv(offset: usize, source: TlvError) -> Self {
        Error::MalformedTlv { offset, source }
    }
}
