//! The result and error codes of SGP.22 ES10 responses, named.
//!
//! Every refusal of the eUICC is answered with one of these values inside
//! the response the specification defines for it (for example
//! `authenticateResponseError` with an [`AuthenticateErrorCode`], or a
//! ProfileInstallationResult carrying a [`BppCommandId`] and an
//! [`InstallErrorReason`]). LPAs and tests use them to read the answers.

/// `AuthenticateErrorCode` (ES10b.AuthenticateServer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthenticateErrorCode {
    /// 1: the server certificate is not a valid certificate of a trusted CI.
    InvalidCertificate,
    /// 2: serverSignature1 does not verify.
    InvalidSignature,
    /// 3: the server key is not on a supported curve.
    UnsupportedCurve,
    /// 4: no RSP session (no GetEuiccChallenge before).
    NoSessionContext,
    /// 5: the certificate is not an SM-DP+ authentication certificate.
    InvalidOid,
    /// 6: serverSigned1 carries another eUICC challenge.
    EuiccChallengeMismatch,
    /// 7: euiccCiPKIdToBeUsed names a CI this eUICC does not have.
    CiPkUnknown,
    /// 127: any other failure.
    UndefinedError,
}

impl AuthenticateErrorCode {
    /// The ASN.1 value.
    pub fn code(self) -> i64 {
        match self {
            Self::InvalidCertificate => 1,
            Self::InvalidSignature => 2,
            Self::UnsupportedCurve => 3,
            Self::NoSessionContext => 4,
            Self::InvalidOid => 5,
            Self::EuiccChallengeMismatch => 6,
            Self::CiPkUnknown => 7,
            Self::UndefinedError => 127,
        }
    }

    /// From the ASN.1 value.
    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::InvalidCertificate,
            Self::InvalidSignature,
            Self::UnsupportedCurve,
            Self::NoSessionContext,
            Self::InvalidOid,
            Self::EuiccChallengeMismatch,
            Self::CiPkUnknown,
            Self::UndefinedError,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// `DownloadErrorCode` (ES10b.PrepareDownload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownloadErrorCode {
    /// 1: the DPpb certificate is not valid for this session.
    InvalidCertificate,
    /// 2: smdpSignature2 does not verify.
    InvalidSignature,
    /// 3: the DPpb key is not on a supported curve.
    UnsupportedCurve,
    /// 4: no authenticated RSP session.
    NoSessionContext,
    /// 5: smdpSigned2 carries another transaction id.
    InvalidTransactionId,
    /// 127: any other failure (for example a missing confirmation code).
    UndefinedError,
}

impl DownloadErrorCode {
    /// The ASN.1 value.
    pub fn code(self) -> i64 {
        match self {
            Self::InvalidCertificate => 1,
            Self::InvalidSignature => 2,
            Self::UnsupportedCurve => 3,
            Self::NoSessionContext => 4,
            Self::InvalidTransactionId => 5,
            Self::UndefinedError => 127,
        }
    }

    /// From the ASN.1 value.
    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::InvalidCertificate,
            Self::InvalidSignature,
            Self::UnsupportedCurve,
            Self::NoSessionContext,
            Self::InvalidTransactionId,
            Self::UndefinedError,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// `BppCommandId`: which step of the Bound Profile Package failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BppCommandId {
    /// 0: InitialiseSecureChannel (`BF23`).
    InitialiseSecureChannel,
    /// 1: ConfigureISDP (`87` in `A0`).
    ConfigureIsdp,
    /// 2: StoreMetadata (the first `88` segment, or the whole metadata).
    StoreMetadata,
    /// 3: StoreMetadata, a later `88` segment.
    StoreMetadata2,
    /// 4: ReplaceSessionKeys (`87` in `A2`).
    ReplaceSessionKeys,
    /// 5: LoadProfileElements (`86` in `A3`, and the installation).
    LoadProfileElements,
}

impl BppCommandId {
    /// The ASN.1 value.
    pub fn code(self) -> i64 {
        match self {
            Self::InitialiseSecureChannel => 0,
            Self::ConfigureIsdp => 1,
            Self::StoreMetadata => 2,
            Self::StoreMetadata2 => 3,
            Self::ReplaceSessionKeys => 4,
            Self::LoadProfileElements => 5,
        }
    }

    /// From the ASN.1 value.
    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::InitialiseSecureChannel,
            Self::ConfigureIsdp,
            Self::StoreMetadata,
            Self::StoreMetadata2,
            Self::ReplaceSessionKeys,
            Self::LoadProfileElements,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// `ErrorReason` of a failed installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallErrorReason {
    /// 1: a value is malformed or out of range.
    IncorrectInputValues,
    /// 2: smdpSign does not verify.
    InvalidSignature,
    /// 3: the package belongs to another transaction.
    InvalidTransactionId,
    /// 4: the control reference template asks for unsupported keys.
    UnsupportedCrtValues,
    /// 5: remoteOpId is not installBoundProfilePackage.
    UnsupportedRemoteOperationType,
    /// 6: the profile class is not supported.
    UnsupportedProfileClass,
    /// 7: the package structure or a segment is malformed.
    Scp03tStructureError,
    /// 8: a segment's MAC does not verify (tampered or out of order).
    Scp03tSecurityError,
    /// 9: a profile with this ICCID is already installed.
    IccidAlreadyExistsOnEuicc,
    /// 10: not enough memory for the profile.
    InsufficientMemoryForProfile,
    /// 11: the installation was interrupted.
    Interruption,
    /// 12: a profile element could not be processed.
    PeProcessingError,
    /// 13: the profile does not match its metadata (ICCID).
    DataMismatch,
    /// 14: a test profile's NAA key is invalid.
    TestProfileInvalidNaaKey,
    /// 15: a profile policy rule is not allowed.
    PprNotAllowed,
    /// 127: any other failure.
    UnknownError,
}

impl InstallErrorReason {
    /// The ASN.1 value.
    pub fn code(self) -> i64 {
        match self {
            Self::IncorrectInputValues => 1,
            Self::InvalidSignature => 2,
            Self::InvalidTransactionId => 3,
            Self::UnsupportedCrtValues => 4,
            Self::UnsupportedRemoteOperationType => 5,
            Self::UnsupportedProfileClass => 6,
            Self::Scp03tStructureError => 7,
            Self::Scp03tSecurityError => 8,
            Self::IccidAlreadyExistsOnEuicc => 9,
            Self::InsufficientMemoryForProfile => 10,
            Self::Interruption => 11,
            Self::PeProcessingError => 12,
            Self::DataMismatch => 13,
            Self::TestProfileInvalidNaaKey => 14,
            Self::PprNotAllowed => 15,
            Self::UnknownError => 127,
        }
    }

    /// From the ASN.1 value.
    pub fn from_code(code: i64) -> Option<Self> {
        ALL_REASONS.into_iter().find(|c| c.code() == code)
    }
}

const ALL_REASONS: [InstallErrorReason; 16] = [
    InstallErrorReason::IncorrectInputValues,
    InstallErrorReason::InvalidSignature,
    InstallErrorReason::InvalidTransactionId,
    InstallErrorReason::UnsupportedCrtValues,
    InstallErrorReason::UnsupportedRemoteOperationType,
    InstallErrorReason::UnsupportedProfileClass,
    InstallErrorReason::Scp03tStructureError,
    InstallErrorReason::Scp03tSecurityError,
    InstallErrorReason::IccidAlreadyExistsOnEuicc,
    InstallErrorReason::InsufficientMemoryForProfile,
    InstallErrorReason::Interruption,
    InstallErrorReason::PeProcessingError,
    InstallErrorReason::DataMismatch,
    InstallErrorReason::TestProfileInvalidNaaKey,
    InstallErrorReason::PprNotAllowed,
    InstallErrorReason::UnknownError,
];

/// Results of the profile management functions (`enableResult`,
/// `disableResult`, `deleteResult`, `setNicknameResult`, `resetResult`, ...).
/// Each function uses the subset SGP.22 defines for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileResult {
    /// 0: done.
    Ok,
    /// 1: no profile with this ICCID or ISD-P AID (`nothingToDelete` for
    /// memory reset and NotificationSent).
    NotFound,
    /// 2: the profile is not in the state the operation needs.
    WrongState,
    /// 3: a profile policy rule forbids it.
    DisallowedByPolicy,
    /// 127: any other failure.
    UndefinedError,
}

impl ProfileResult {
    /// The ASN.1 value.
    pub fn code(self) -> i64 {
        match self {
            Self::Ok => 0,
            Self::NotFound => 1,
            Self::WrongState => 2,
            Self::DisallowedByPolicy => 3,
            Self::UndefinedError => 127,
        }
    }

    /// From the ASN.1 value.
    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::Ok,
            Self::NotFound,
            Self::WrongState,
            Self::DisallowedByPolicy,
            Self::UndefinedError,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in 0..200 {
            if let Some(x) = AuthenticateErrorCode::from_code(c) {
                assert_eq!(x.code(), c);
            }
            if let Some(x) = DownloadErrorCode::from_code(c) {
                assert_eq!(x.code(), c);
            }
            if let Some(x) = BppCommandId::from_code(c) {
                assert_eq!(x.code(), c);
            }
            if let Some(x) = InstallErrorReason::from_code(c) {
                assert_eq!(x.code(), c);
            }
            if let Some(x) = ProfileResult::from_code(c) {
                assert_eq!(x.code(), c);
            }
        }
        assert_eq!(
            InstallErrorReason::from_code(8),
            Some(InstallErrorReason::Scp03tSecurityError)
        );
        assert_eq!(BppCommandId::from_code(6), None);
    }
}
