//! What a download returns: the outcome with per-step timings, or the
//! failure with the step it happened at and how the session was cancelled.

use std::fmt;
use std::time::Duration;

use ferrosim_asn1::tlv::Tlv;
use ferrosim_ids::{Iccid, TransactionId};
use thiserror::Error;

use crate::es9::Es9ClientError;
use crate::es10::Es10Error;
use crate::es10::decode::{bits, children, iccid_digits, integer, optional, required, utf8};
use crate::es10::types::{CancelSessionReason, PolicyRules, ProfileClass, installation_error_name};

/// One call of the download flow, for timings and error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// ES10b GetEUICCChallenge.
    GetEuiccChallenge,
    /// ES10b GetEUICCInfo (EUICCInfo1).
    GetEuiccInfo1,
    /// ES9+ initiateAuthentication.
    InitiateAuthentication,
    /// ES10b AuthenticateServer.
    AuthenticateServer,
    /// ES9+ authenticateClient.
    AuthenticateClient,
    /// Checking the profile metadata and asking the end user.
    ConfirmProfile,
    /// ES10b PrepareDownload.
    PrepareDownload,
    /// ES9+ getBoundProfilePackage.
    GetBoundProfilePackage,
    /// ES10b LoadBoundProfilePackage.
    LoadBoundProfilePackage,
    /// ES9+ handleNotification of the installation result.
    HandleNotification,
    /// ES10b RemoveNotificationFromList of the installation result.
    RemoveNotification,
    /// ES10b CancelSession.
    CancelSessionEuicc,
    /// ES9+ cancelSession.
    CancelSessionSmdp,
}

impl Step {
    /// The function's SGP.22 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetEuiccChallenge => "GetEUICCChallenge",
            Self::GetEuiccInfo1 => "GetEUICCInfo1",
            Self::InitiateAuthentication => "initiateAuthentication",
            Self::AuthenticateServer => "AuthenticateServer",
            Self::AuthenticateClient => "authenticateClient",
            Self::ConfirmProfile => "confirmProfile",
            Self::PrepareDownload => "PrepareDownload",
            Self::GetBoundProfilePackage => "getBoundProfilePackage",
            Self::LoadBoundProfilePackage => "LoadBoundProfilePackage",
            Self::HandleNotification => "handleNotification",
            Self::RemoveNotification => "RemoveNotificationFromList",
            Self::CancelSessionEuicc => "CancelSession (eUICC)",
            Self::CancelSessionSmdp => "cancelSession (SM-DP+)",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long one step took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTiming {
    /// The step.
    pub step: Step,
    /// Wall-clock time it took.
    pub elapsed: Duration,
}

/// The profile metadata (`StoreMetadataRequest`, `BF25`) the SM-DP+ sent:
/// what the end user is asked to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMetadata {
    /// The profile's ICCID (a metadata ICCID that is not a valid ICCID,
    /// check digit included, fails the decoding).
    pub iccid: Iccid,
    /// Service provider name.
    pub service_provider_name: String,
    /// Profile name.
    pub profile_name: String,
    /// Profile class: operational when absent, `None` for a value SGP.22
    /// does not define (the eUICC will refuse to install such a profile).
    pub class: Option<ProfileClass>,
    /// Policy rules the profile carries.
    pub policy_rules: PolicyRules,
    /// The `BF25` as received.
    pub raw: Vec<u8>,
}

impl ProfileMetadata {
    /// Decodes a `BF25`.
    pub fn decode(raw: Vec<u8>) -> Result<Self, Es10Error> {
        const F: &str = "profileMetadata";
        let top = Tlv::parse_tagged(&raw, 0xBF25).map_err(|e| Es10Error::bad(F, e))?;
        let items = children(F, &top)?;
        let metadata = Self {
            iccid: Iccid::new(&iccid_digits(F, required(F, &items, 0x5A, "iccid")?.value)?)
                .map_err(|e| Es10Error::bad(F, e))?,
            service_provider_name: utf8(
                F,
                required(F, &items, 0x91, "serviceProviderName")?.value,
            )?,
            profile_name: utf8(F, required(F, &items, 0x92, "profileName")?.value)?,
            class: match optional(&items, 0x95) {
                Some(t) => ProfileClass::from_code(integer(F, t.value)?),
                None => Some(ProfileClass::Operational),
            },
            policy_rules: match optional(&items, 0x99) {
                Some(t) => PolicyRules::from_bits(&bits(F, t.value)?),
                None => PolicyRules::default(),
            },
            raw: Vec::new(),
        };
        Ok(Self { raw, ..metadata })
    }
}

/// The end user's answer to the profile metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Download and install.
    Accept,
    /// Refuse: the order ends (CancelSession `endUserRejection`).
    Reject,
    /// Not now: the order stays open (CancelSession `postponed`).
    Postpone,
}

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOutcome {
    /// ICCID of the installed profile.
    pub iccid: Iccid,
    /// AID of its ISD-P.
    pub isdp_aid: Vec<u8>,
    /// The session's transaction id.
    pub transaction_id: TransactionId,
    /// The metadata accepted.
    pub metadata: ProfileMetadata,
    /// Whether the SM-DP+ acknowledged the installation result. When it did
    /// not, the result stays on the eUICC as a pending notification.
    pub result_delivered: bool,
    /// The signed ProfileInstallationResult (`BF37`) as the eUICC returned
    /// it (an SGP.32 IPA returns it to its eIM).
    pub installation_result: Vec<u8>,
    /// Each step in order with its duration.
    pub timings: Vec<StepTiming>,
}

impl DownloadOutcome {
    /// Total time of the steps.
    pub fn total(&self) -> Duration {
        self.timings.iter().map(|t| t.elapsed).sum()
    }
}

/// What went wrong in a download.
#[derive(Debug, Error)]
pub enum DownloadFailure {
    /// An ES10 function failed (APDU exchange, malformed answer, refusal).
    #[error(transparent)]
    Euicc(#[from] Es10Error),
    /// An ES9+ call failed.
    #[error(transparent)]
    Smdp(#[from] Es9ClientError),
    /// The eUICC refused the SM-DP+ (AuthenticateServer error); the SM-DP+ was told.
    #[error("the eUICC did not authenticate the SM-DP+: {} ({code})", crate::es10::result_name("AuthenticateServer", *code))]
    ServerNotAuthenticated {
        /// AuthenticateErrorCode.
        code: i64,
    },
    /// The eUICC refused PrepareDownload; the SM-DP+ was told.
    #[error("the eUICC refused to prepare the download: {} ({code})", crate::es10::result_name("PrepareDownload", *code))]
    DownloadNotPrepared {
        /// DownloadErrorCode.
        code: i64,
    },
    /// The SM-DP+'s certificate does not carry the OID of the activation code.
    #[error("the SM-DP+ certificate carries OID(s) {found}, the activation code names {expected}")]
    SmdpOidMismatch {
        /// The OID of the activation code.
        expected: String,
        /// The OIDs of the certificate.
        found: String,
    },
    /// An SM-DP+ answer cannot be used (transaction id, signed data).
    #[error("unusable SM-DP+ answer: {0}")]
    InvalidSmdpAnswer(String),
    /// The profile metadata is malformed.
    #[error("profile metadata: {0}")]
    MetadataMismatch(String),
    /// The end user refused the profile.
    #[error("the end user refused the profile")]
    UserRejected,
    /// The end user postponed the download.
    #[error("the end user postponed the download")]
    UserPostponed,
    /// The SM-DP+ requires a confirmation code and none was given; the
    /// session was cancelled as `postponed`, so the order stays open.
    #[error(
        "this order requires a confirmation code (the download was postponed, the order stays open)"
    )]
    ConfirmationCodeRequired,
    /// The driver stopped giving the download machine the inputs it waits
    /// for (a driver bug, never a peer's doing).
    #[error("the download stalled: its driver gave no answer to the last action")]
    Stalled,
    /// The eUICC reported an installation failure in its installation result.
    #[error("installation failed on the eUICC at {} : {} ({error_reason}); result {}",
        crate::es10::types::bpp_command_name(*bpp_command_id), installation_error_name(*error_reason),
        if *result_delivered { "sent to the SM-DP+" } else { "kept on the eUICC for later delivery" })]
    InstallationFailed {
        /// BppCommandId of the failed command.
        bpp_command_id: i64,
        /// ErrorReason.
        error_reason: i64,
        /// Whether the SM-DP+ acknowledged the result.
        result_delivered: bool,
    },
}

/// How a failed download's session was cancelled.
#[derive(Debug)]
pub struct Cancellation {
    /// The reason given.
    pub reason: CancelSessionReason,
    /// Why ES10 CancelSession failed, if it did.
    pub euicc_error: Option<Es10Error>,
    /// Why ES9+ cancelSession failed or was not attempted, if so.
    pub smdp_error: Option<Es9ClientError>,
}

impl Cancellation {
    /// Whether both sides accepted the cancellation.
    pub fn completed(&self) -> bool {
        self.euicc_error.is_none() && self.smdp_error.is_none()
    }
}

impl fmt::Display for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session cancelled ({})", self.reason)?;
        if let Some(e) = &self.euicc_error {
            write!(f, "; the eUICC did not cancel: {e}")?;
        }
        if let Some(e) = &self.smdp_error {
            write!(f, "; the SM-DP+ was not told: {e}")?;
        }
        Ok(())
    }
}

/// A failed download.
#[derive(Debug, Error)]
pub struct DownloadError {
    /// The step that failed.
    pub step: Step,
    /// What went wrong.
    pub failure: DownloadFailure,
    /// How the session was cancelled, when one was open.
    pub cancellation: Option<Cancellation>,
    /// The steps done, with their durations.
    pub timings: Vec<StepTiming>,
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "profile download failed at {}: {}",
            self.step, self.failure
        )?;
        if let Some(c) = &self.cancellation {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}
