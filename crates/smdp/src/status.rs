//! SGP.22 function execution status codes (subject code / reason code).
//!
//! Every failure the SM-DP+ reports over ES9+ or ES2+ is one of these pairs,
//! carried in `header.functionExecutionStatus.statusCodeData`. They are
//! collected here, in one place, so that each typed error maps to exactly one
//! code (see `Error::status` in the crate root).

use ferrosim_asn1::json::StatusCodeData;

/// A subject code / reason code pair with its SGP.22 meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode {
    /// Subject code: what the status is about (e.g. `8.8.1` SM-DP+ address).
    pub subject: &'static str,
    /// Reason code: what happened to it (e.g. `3.8` refused).
    pub reason: &'static str,
    /// The SGP.22 wording, sent as `message`.
    pub message: &'static str,
}

impl StatusCode {
    const fn new(subject: &'static str, reason: &'static str, message: &'static str) -> Self {
        Self {
            subject,
            reason,
            message,
        }
    }

    // --- request format and caller (generic codes of SGP.22 section 5.1.6)
    /// A mandatory element of the request is missing.
    pub const MANDATORY_ELEMENT_MISSING: Self =
        Self::new("1.2", "2.2", "Mandatory element missing");
    /// The request is not valid JSON, base64 or DER, or has a wrong field format.
    pub const INVALID_REQUEST_FORMAT: Self = Self::new("1.2", "2.1", "Invalid request format");
    /// The function caller is not authenticated or not allowed.
    pub const FUNCTION_REQUESTER_NOT_ALLOWED: Self =
        Self::new("1.1.1", "1.2", "Function requester not allowed");
    /// The functionCallIdentifier was used before for a different request.
    pub const FUNCTION_CALL_ID_REUSED: Self = Self::new(
        "1.1.2",
        "3.3",
        "functionCallIdentifier already used for another request",
    );
    /// The same functionCallIdentifier is being executed right now.
    pub const FUNCTION_CALL_IN_PROGRESS: Self =
        Self::new("1.1.2", "3.7", "functionCallIdentifier is being executed");
    /// A server-side failure that is not the caller's fault.
    pub const EXECUTION_ERROR: Self = Self::new("8.8", "4.2", "Execution error");

    // --- eUICC and its certificates
    /// The eUICC signature or the signed challenge did not verify.
    pub const EUICC_VERIFICATION_FAILED: Self =
        Self::new("8.1", "6.1", "eUICC verification failed");
    /// The EID does not match the order.
    pub const EID_REFUSED: Self = Self::new("8.1.1", "3.8", "EID refused");
    /// The EID is not a valid EID.
    pub const EID_INVALID: Self = Self::new("8.1.1", "2.1", "EID invalid");
    /// The EUM certificate does not verify against the CI.
    pub const EUM_CERT_INVALID: Self =
        Self::new("8.1.2", "6.1", "EUM certificate verification failed");
    /// The EUM certificate is expired or not yet valid.
    pub const EUM_CERT_EXPIRED: Self = Self::new("8.1.2", "6.3", "EUM certificate expired");
    /// The eUICC certificate does not verify against the EUM.
    pub const EUICC_CERT_INVALID: Self =
        Self::new("8.1.3", "6.1", "eUICC certificate verification failed");
    /// The eUICC certificate is expired or not yet valid.
    pub const EUICC_CERT_EXPIRED: Self = Self::new("8.1.3", "6.3", "eUICC certificate expired");
    /// The EID lies outside the range the EUM may issue.
    pub const EID_OUTSIDE_EUM_RANGE: Self =
        Self::new("8.1.4", "6.1", "EID outside the permitted range of the EUM");

    // --- profile and order
    /// The profile may not be installed on this device (profile policy rules).
    pub const PROFILE_NOT_ALLOWED: Self = Self::new("8.2", "1.2", "Profile not allowed");
    /// The profile is no longer available (already downloaded, or order ended).
    pub const PROFILE_UNAVAILABLE: Self = Self::new("8.2", "3.7", "Profile unavailable");
    /// No profile with this ICCID is known to the SM-DP+ for this operator.
    pub const ICCID_UNKNOWN: Self = Self::new("8.2.1", "3.9", "Profile ICCID unknown");
    /// The profile with this ICCID is not in a state allowing the function.
    pub const ICCID_NOT_ALLOWED: Self = Self::new("8.2.1", "3.7", "Profile ICCID not available");
    /// No profile type with this name is known for the operator.
    pub const PROFILE_TYPE_UNKNOWN: Self = Self::new("8.2.5", "3.9", "Profile type unknown");
    /// No more available profiles of the requested type.
    pub const PROFILE_TYPE_EXHAUSTED: Self = Self::new(
        "8.2.5",
        "3.7",
        "No more profiles available for the profile type",
    );
    /// The matching id is unknown or does not refer to a released order.
    pub const MATCHING_ID_REFUSED: Self = Self::new("8.2.6", "3.8", "Matching ID refused");
    /// The matching id is already used by another order.
    pub const MATCHING_ID_IN_USE: Self = Self::new("8.2.6", "3.3", "Matching ID already in use");
    /// The order requires a confirmation code and none was given.
    pub const CONFIRMATION_CODE_MISSING: Self =
        Self::new("8.2.7", "2.2", "Confirmation code missing");
    /// The confirmation code is wrong.
    pub const CONFIRMATION_CODE_REFUSED: Self =
        Self::new("8.2.7", "3.8", "Confirmation code refused");
    /// Too many wrong confirmation codes: the order is terminated.
    pub const CONFIRMATION_CODE_RETRIES_EXCEEDED: Self = Self::new(
        "8.2.7",
        "6.4",
        "Maximum number of confirmation code retries exceeded",
    );

    // --- SM-DP+ side
    /// The SM-DP+ address in the request is not this SM-DP+.
    pub const SMDP_ADDRESS_REFUSED: Self = Self::new("8.8.1", "3.8", "Invalid SM-DP+ address");
    /// None of the eUICC's CI key ids is supported.
    pub const CI_KEY_NOT_SUPPORTED: Self = Self::new(
        "8.8.2",
        "3.1",
        "None of the proposed Public Key Identifiers is supported by the SM-DP+",
    );
    /// The eUICC cannot verify any DPauth certificate we have.
    pub const DPAUTH_CI_NOT_SUPPORTED: Self = Self::new(
        "8.8.4",
        "3.7",
        "The SM-DP+ has no CERT.DPauth.SIG chaining to a CI the eUICC supports",
    );
    /// The eUICC's specification version is not supported.
    pub const SVN_NOT_SUPPORTED: Self = Self::new(
        "8.8.3",
        "3.1",
        "The Specification Version Number indicated by the eUICC is not supported",
    );
    /// The download order expired.
    pub const DOWNLOAD_ORDER_EXPIRED: Self =
        Self::new("8.8.5", "4.10", "Download order has expired");
    /// Too many download attempts for this order.
    pub const DOWNLOAD_RETRIES_EXCEEDED: Self = Self::new(
        "8.8.5",
        "6.4",
        "Maximum number of download attempts exceeded",
    );
    /// The SM-DP+ OID in a signed structure is not this SM-DP+'s.
    pub const SMDP_OID_INVALID: Self =
        Self::new("8.8", "3.10", "The provided SM-DP+ OID is invalid");
    /// The transaction id is unknown or its session has ended.
    pub const TRANSACTION_ID_UNKNOWN: Self = Self::new("8.10.1", "3.9", "TransactionId unknown");
    /// The CI public key of the eUICC chain is unknown or not the one agreed.
    pub const CI_KEY_UNKNOWN: Self = Self::new("8.11.1", "3.9", "CI public key unknown");

    /// Every status code above, for lookups.
    pub const ALL: [Self; 33] = [
        Self::MANDATORY_ELEMENT_MISSING,
        Self::INVALID_REQUEST_FORMAT,
        Self::FUNCTION_REQUESTER_NOT_ALLOWED,
        Self::FUNCTION_CALL_ID_REUSED,
        Self::FUNCTION_CALL_IN_PROGRESS,
        Self::EXECUTION_ERROR,
        Self::EUICC_VERIFICATION_FAILED,
        Self::EID_REFUSED,
        Self::EID_INVALID,
        Self::EUM_CERT_INVALID,
        Self::EUM_CERT_EXPIRED,
        Self::EUICC_CERT_INVALID,
        Self::EUICC_CERT_EXPIRED,
        Self::EID_OUTSIDE_EUM_RANGE,
        Self::PROFILE_NOT_ALLOWED,
        Self::PROFILE_UNAVAILABLE,
        Self::ICCID_UNKNOWN,
        Self::ICCID_NOT_ALLOWED,
        Self::PROFILE_TYPE_UNKNOWN,
        Self::PROFILE_TYPE_EXHAUSTED,
        Self::MATCHING_ID_REFUSED,
        Self::MATCHING_ID_IN_USE,
        Self::CONFIRMATION_CODE_MISSING,
        Self::CONFIRMATION_CODE_REFUSED,
        Self::CONFIRMATION_CODE_RETRIES_EXCEEDED,
        Self::SMDP_ADDRESS_REFUSED,
        Self::CI_KEY_NOT_SUPPORTED,
        Self::SVN_NOT_SUPPORTED,
        Self::DOWNLOAD_ORDER_EXPIRED,
        Self::DOWNLOAD_RETRIES_EXCEEDED,
        Self::SMDP_OID_INVALID,
        Self::TRANSACTION_ID_UNKNOWN,
        Self::CI_KEY_UNKNOWN,
    ];

    /// The known code with this subject and reason, if any.
    pub fn lookup(subject: &str, reason: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.subject == subject && c.reason == reason)
    }
}

impl StatusCode {
    /// The JSON `statusCodeData` of this code, with `message` instead of the
    /// SGP.22 wording when given.
    pub fn to_data(self, message: Option<String>) -> StatusCodeData {
        StatusCodeData {
            subject_code: self.subject.to_owned(),
            reason_code: self.reason.to_owned(),
            subject_identifier: None,
            message: Some(message.unwrap_or_else(|| self.message.to_owned())),
        }
    }
}

impl From<StatusCode> for StatusCodeData {
    fn from(code: StatusCode) -> Self {
        code.to_data(None)
    }
}
