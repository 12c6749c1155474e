//! What the fleet asks drivers to do, and what they report back.
//!
//! The vocabulary follows the protocols so a driver maps each command to one
//! call: ES2+ functions at a carrier's SM-DP+ (SGP.22 5.3), eIM packages of
//! SGP.32 PSMOs (enable [3] with rollbackFlag, delete [5],
//! setFallbackAttribute [8], unsetFallbackAttribute [9], listProfileInfo),
//! an IpaEuiccDataRequest (BF52) for the device's capabilities,
//! an eIM profileDownloadTriggerRequest (BF54) with an activation code, and
//! commands to the device agent (ExecuteFallbackMechanism BF5D,
//! ReturnFromFallback BF5E, APN configuration).
//!
//! Every action has an [`ActionId`]; a driver uses it as the ES2+
//! `functionCallIdentifier` or the eIM transaction id, so an action issued
//! again after a crash or time-out ([`Action::reissue`]) is executed once.

use std::fmt;

use ferrosim_ids::{Eid, Iccid, MatchingId};
use ferrosim_telemetry::{CorrelationId, StatusCode};
use serde::{Deserialize, Serialize};

use crate::catalog::{ApnId, CarrierId, ProfileTypeId, SmdpId};

/// The id of one action, unique within a fleet (never reused, also across
/// restarts: the counter is part of the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// An activation code for the eIM to hand the IPA (SGP.22 4.1: `1$SM-DP+
/// address$matching id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationCode {
    /// The SM-DP+ (its address is in the catalog).
    pub smdp: SmdpId,
    /// The matching id ConfirmOrder returned.
    pub matching_id: MatchingId,
}

/// One thing to do for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// ES2+ DownloadOrder at the carrier's SM-DP+ for the device's EID:
    /// reserves a profile of the type; the answer names its ICCID.
    Es2DownloadOrder {
        /// Carrier (its credentials reference is in the catalog).
        carrier: CarrierId,
        /// Its SM-DP+.
        smdp: SmdpId,
        /// Profile type (ES2+ `profileType`).
        profile_type: ProfileTypeId,
    },
    /// ES2+ ConfirmOrder (releaseFlag true) of the reserved profile; the
    /// answer's matching id makes the activation code.
    Es2ConfirmOrder {
        /// Carrier.
        carrier: CarrierId,
        /// Its SM-DP+.
        smdp: SmdpId,
        /// The reserved profile.
        iccid: Iccid,
    },
    /// eIM profileDownloadTriggerRequest with an activation code: the IPA
    /// downloads the profile (through the eIM or directly).
    EimDownloadTrigger {
        /// Profile type being downloaded.
        profile_type: ProfileTypeId,
        /// The profile's ICCID (from the order).
        iccid: Iccid,
        /// The code.
        activation_code: ActivationCode,
    },
    /// PSMO enable with the rollback flag (the IPA goes back to the
    /// previous profile if the new one does not connect).
    EimEnable {
        /// Profile to enable.
        iccid: Iccid,
        /// rollbackFlag.
        rollback: bool,
    },
    /// PSMO delete (only ever of a disabled profile, never of the last
    /// working one).
    EimDelete {
        /// Profile to delete.
        iccid: Iccid,
    },
    /// PSMO setFallbackAttribute.
    EimSetFallbackAttribute {
        /// Profile that becomes the fallback.
        iccid: Iccid,
    },
    /// PSMO unsetFallbackAttribute.
    EimUnsetFallbackAttribute {
        /// Profile that stops being the fallback.
        iccid: Iccid,
    },
    /// PSMO listProfileInfo: learn the eUICC's profiles (after a result
    /// went missing).
    EimListProfileInfo,
    /// eIM IpaEuiccDataRequest for EUICCInfo2 (SGP.32 version, fallback
    /// support), IpaCapabilities and DeviceInfo: learn what the device can
    /// do. Answered with [`Outcome::Capabilities`].
    EimReadCapabilities,
    /// Device agent: run ExecuteFallbackMechanism on the eUICC.
    AgentExecuteFallback {
        /// The fallback profile expected to become enabled.
        iccid: Iccid,
    },
    /// Device agent: run ReturnFromFallback on the eUICC.
    AgentReturnFromFallback {
        /// The profile expected to become enabled again.
        iccid: Iccid,
    },
    /// Device agent: use these APN settings with this profile.
    AgentApnConfig {
        /// The profile.
        iccid: Iccid,
        /// The settings (in the catalog).
        apn: ApnId,
    },
}

impl Command {
    /// A short name (`es2.downloadOrder`, `eim.enable`...), for logs and
    /// decision records.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Es2DownloadOrder { .. } => "es2.downloadOrder",
            Self::Es2ConfirmOrder { .. } => "es2.confirmOrder",
            Self::EimDownloadTrigger { .. } => "eim.profileDownloadTrigger",
            Self::EimEnable { .. } => "eim.enable",
            Self::EimDelete { .. } => "eim.delete",
            Self::EimSetFallbackAttribute { .. } => "eim.setFallbackAttribute",
            Self::EimUnsetFallbackAttribute { .. } => "eim.unsetFallbackAttribute",
            Self::EimListProfileInfo => "eim.listProfileInfo",
            Self::EimReadCapabilities => "eim.readCapabilities",
            Self::AgentExecuteFallback { .. } => "agent.executeFallbackMechanism",
            Self::AgentReturnFromFallback { .. } => "agent.returnFromFallback",
            Self::AgentApnConfig { .. } => "agent.apnConfig",
        }
    }

    /// Whether it is an ES2+ call (answered within seconds) rather than an
    /// eIM package or agent command (answered when the device next polls).
    pub fn is_es2(&self) -> bool {
        matches!(
            self,
            Self::Es2DownloadOrder { .. } | Self::Es2ConfirmOrder { .. }
        )
    }
}

/// An action for a driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Its id (ES2+ functionCallIdentifier, eIM transaction id).
    pub id: ActionId,
    /// The device.
    pub device: Eid,
    /// What to do.
    pub command: Command,
    /// The activation (failover, rollout step) it belongs to, for telemetry.
    #[serde(default)]
    pub activation: Option<u64>,
    /// Issued before (after a time-out or a restart): execute at most once.
    #[serde(default)]
    pub reissue: bool,
}

impl Action {
    /// The telemetry correlation id of its activation.
    pub fn correlation(&self) -> Option<CorrelationId> {
        self.activation.and_then(CorrelationId::new)
    }
}

/// A profile as listed by listProfileInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedProfile {
    /// ICCID.
    pub iccid: Iccid,
    /// Enabled.
    pub enabled: bool,
    /// Carries the fallback attribute.
    pub fallback_attribute: bool,
}

/// Why a PSMO or agent command failed (SGP.32 result codes, mapped by the
/// driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsmoError {
    /// iccidOrAidNotFound: the profile is not on the eUICC.
    NotFound,
    /// profileNotInDisabledState / profileNotInEnabledState.
    WrongState,
    /// Refused by policy: a PPR, rollbackNotAllowed, fallbackNotAllowed.
    NotAllowed,
    /// The eUICC has no room for the profile.
    InsufficientMemory,
    /// Another result code.
    Other(u8),
}

/// What went wrong with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// ES2+ answered Failed with this status code.
    Es2 {
        /// SGP.22 subject/reason code (rendered `8.1.1/3.8`).
        #[serde(with = "status_text")]
        code: StatusCode,
    },
    /// The eUICC or IPA refused the PSMO or command.
    Psmo {
        /// Why.
        error: PsmoError,
    },
    /// The download failed on the device (eUICC error reason).
    Download {
        /// The eUICC's error reason.
        reason: u8,
    },
    /// No answer (connection, TLS, time-out at the driver).
    Unreachable,
}

mod status_text {
    use ferrosim_telemetry::StatusCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(code: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(code)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatusCode, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|()| {
            serde::de::Error::custom(format!("{text:?} is not a status code (8.1.1/3.8)"))
        })
    }
}

/// What came of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// DownloadOrder reserved this profile.
    OrderReserved {
        /// Its ICCID.
        iccid: Iccid,
    },
    /// ConfirmOrder released the order with this matching id.
    OrderConfirmed {
        /// The matching id.
        matching_id: MatchingId,
    },
    /// The download trigger ended with the profile installed.
    Installed {
        /// The installed profile.
        iccid: Iccid,
    },
    /// The PSMO or agent command succeeded.
    Done,
    /// The enable was rolled back by the IPA (the new profile did not
    /// connect; the previous one is enabled again).
    RolledBack,
    /// listProfileInfo's answer.
    ProfileList {
        /// The eUICC's profiles.
        profiles: Vec<ListedProfile>,
    },
    /// The capabilities the IPA reported (answer to
    /// [`Command::EimReadCapabilities`]).
    Capabilities {
        /// What the device can do.
        capabilities: crate::device::Capabilities,
    },
    /// It failed.
    Failed {
        /// How.
        failure: Failure,
        /// Whether trying again may help (time-outs, busy servers) or not
        /// (a refusal that will stay).
        retryable: bool,
    },
}

/// A driver's report on an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The action.
    pub id: ActionId,
    /// Its device.
    pub device: Eid,
    /// What came of it.
    pub outcome: Outcome,
}
