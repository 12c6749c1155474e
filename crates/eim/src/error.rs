//! Why the eIM refused something: one enum for its operations, and one for
//! the package results it does not accept ([`ResultRefused`]).

use thiserror::Error;

use crate::ids::Eid;
use crate::store::StoreError;

/// A refused eIM operation.
#[derive(Debug, Error)]
pub enum EimError {
    /// An eIM id must have 1 to 128 characters.
    #[error("an eIM id has 1 to 128 characters, not {0}")]
    InvalidEimId(usize),
    /// Text that is not an eIM transaction id (16 hex digits).
    #[error("`{0}` is not an eIM transaction id (16 hex digits)")]
    InvalidTransactionId(String),
    /// A counter value outside `0..=0x7FFFFF`.
    #[error("counter value {0} is outside 0..=0x7FFFFF")]
    CounterOutOfRange(u64),
    /// Every counter value up to 0x7FFFFF was used: the eUICC would answer
    /// `counterValueOutOfRange`; the device needs a new association.
    #[error("the association's counter reached 0x7FFFFF")]
    CounterExhausted,
    /// The EID has no association with this eIM.
    #[error("EID {0} has no association with this eIM")]
    UnknownDevice(Eid),
    /// The EID already has an association.
    #[error("EID {0} is already associated")]
    AlreadyAssociated(Eid),
    /// The device's release was ordered (this eIM asked its eUICC to
    /// forget it): nothing more can be queued; associate it again once the
    /// release is confirmed.
    #[error(
        "EID {0} is being released from this eIM: associate it again once its release is confirmed"
    )]
    Released(Eid),
    /// Delivered items still await their results: a sanitization starts
    /// once they end (a package being run cannot be called back).
    #[error("{0} delivered item(s) still await their results: sanitize once they have ended")]
    Busy(usize),
    /// The device was never sanitized.
    #[error("EID {0} has no sanitization")]
    NotSanitized(Eid),
    /// The sanitization does not (yet) show a clean eUICC, so the device is
    /// not released.
    #[error("the sanitization is not clean: {0}")]
    NotClean(String),
    /// The eUICC's certificate chain does not verify.
    #[error("the eUICC certificate chain does not verify: {0}")]
    CertificateChain(#[from] ferrosim_pki::Error),
    /// The certificate names another EID than the association's.
    #[error("the eUICC certificate is for EID {certificate}, not {requested}")]
    CertificateForOtherEid {
        /// The EID of the association.
        requested: Eid,
        /// The EID in the certificate.
        certificate: Eid,
    },
    /// A package without operations.
    #[error("an eUICC package needs at least one operation")]
    EmptyPackage,
    /// The device's eUICC implements an SGP.32 version without this
    /// operation (the fallback PSMOs and setDefaultDpAddress need v1.2).
    #[error("the device's eUICC (SGP.32 {version}) has no {operation}")]
    NotSupportedByDevice {
        /// What was asked.
        operation: &'static str,
        /// The eUICC's version.
        version: &'static str,
    },
    /// A request the eIM cannot turn into a valid item.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No queued item with this id (or it was delivered already and can no
    /// longer be withdrawn).
    #[error("no withdrawable queued item {0}")]
    NoSuchItem(u64),
    /// An ESipa message is not one this operation handles.
    #[error("unexpected ESipa message: {0}")]
    UnexpectedMessage(&'static str),
    /// An ESipa message could not be read.
    #[error("malformed ESipa message: {0}")]
    Malformed(#[from] ferrosim_asn1::Error),
    /// Signing with the eIM key failed (a PKCS#11 token unavailable...).
    #[error("signing with the eIM key failed: {0}")]
    Signing(#[from] ferrosim_crypto::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the eIM did not accept one eUICC package result. A refused result is
/// neither stored nor acknowledged (so the eUICC keeps it), and the package
/// it claims to answer stays open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResultRefused {
    /// It does not decode.
    #[error("the result does not decode: {0}")]
    Malformed(String),
    /// It names another eIM.
    #[error("the result is for eIM {0:?}, not this one")]
    OtherEim(String),
    /// Its counter is outside the counter range.
    #[error("the result's counter value is out of range")]
    CounterOutOfRange,
    /// No package with this counter was sent to the device.
    #[error("no package with counter {0} was sent to this device")]
    UnknownCounter(u32),
    /// The package with this counter is queued but was never delivered.
    #[error("the package with counter {0} was never delivered")]
    NotDelivered(u32),
    /// The package with this counter already has another stored result.
    #[error("the package with counter {0} already has a different result")]
    AlreadyAnswered(u32),
    /// Its eimTransactionId is not the one of the package it answers.
    #[error("the result's eimTransactionId is not the package's")]
    TransactionMismatch,
    /// `euiccSignEPR` / `euiccSignEPE` does not verify with the associated
    /// eUICC's key over the input for its version: a tampered result, or one
    /// signed by another key.
    #[error("the eUICC signature of the result does not verify")]
    BadSignature,
    /// An unsigned result (or error) from a device the operator has not
    /// marked as emulating the IoT functions on a consumer eUICC.
    #[error("an unsigned result from a device not marked as emulating the IoT functions")]
    Unsigned,
    /// An unsigned error that names no package this eIM can match.
    #[error("an unsigned error that names no delivered package")]
    Unmatched,
}
