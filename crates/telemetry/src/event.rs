//! The event model: what happened during an activation, compactly.
//!
//! An *activation* (an order's download, an eIM-triggered download, a
//! failover, a rollout step) is a timeline of [`Event`]s sharing one
//! [`CorrelationId`]: the ES2+/ES9+/ESipa steps with their status codes,
//! durations and bytes, the eUICC's results, and the device's connectivity
//! reports on the new profile. Connectivity reports outside any activation
//! (a registration on the usual network, a handover failure) carry no
//! correlation id and still count in the connectivity metrics.
//!
//! Every type here is `Copy` and fixed-size (an [`Event`] is 96 bytes or
//! less, checked by a test), so recording an event never allocates.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use ferrosim_ids::Eid;

use crate::dims::Dims;
use crate::time::Timestamp;

/// The id shared by every event of one activation. Chosen by the producer
/// (the SM-DP+ derives it from the order, the eIM from its package, the
/// simulator counts); never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(pub NonZeroU64);

impl CorrelationId {
    /// The id `n`, or `None` for 0.
    pub fn new(n: u64) -> Option<Self> {
        NonZeroU64::new(n).map(Self)
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One recorded fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When it happened, on the platform's clock (see docs/METRICS.md, "Time
    /// and clock skew": device reports are stamped when they are received).
    pub at: Timestamp,
    /// The activation it belongs to, if any.
    pub activation: Option<CorrelationId>,
    /// The device (its eUICC's EID).
    pub device: Eid,
    /// Who reported it.
    pub source: Source,
    /// Carrier, SM-DP+, vendor, model, firmware, group, rollout and wave.
    pub dims: Dims,
    /// What happened.
    pub kind: EventKind,
}

/// The component that reported an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The SM-DP+ (ES2+ and ES9+ steps it served).
    Smdp,
    /// The eIM (ESipa steps, eUICC packages).
    Eim,
    /// The fleet control plane (failovers, rollout steps).
    Fleet,
    /// The device: its LPA/IPA (eUICC results) or its modem (connectivity).
    Device,
}

/// What kind of work an activation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationKind {
    /// An operator's ES2+ order downloaded by an LPA (consumer device).
    OrderDownload,
    /// A download triggered by the eIM over ESipa (IoT device).
    EimDownload,
    /// A switch to a fallback profile after a carrier failure.
    Failover,
    /// One device's step in a staged rollout.
    RolloutStep,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The first attempt of an activation. `iot` activations succeed only
    /// once the device registered on the new profile. Optional: without it,
    /// an activation starts at its earliest event.
    ActivationStarted {
        /// What is being activated.
        kind: ActivationKind,
        /// Whether success needs a registration on the new profile.
        iot: bool,
    },
    /// One ES2+/ES9+/ESipa function call, as served or as seen by its caller.
    Step {
        /// The function.
        function: Function,
        /// Its outcome.
        status: StepStatus,
        /// How long it took.
        duration_ms: u32,
        /// Request and answer bytes on the wire, without Bound Profile Package
        /// bytes.
        signalling_bytes: u32,
        /// Bound Profile Package bytes carried by this call.
        bpp_bytes: u32,
    },
    /// The eUICC's result for the activation's profile.
    Euicc {
        /// The profile concerned, when known.
        profile: Option<ProfileKey>,
        /// Installed, or why not.
        outcome: EuiccOutcome,
    },
    /// A profile changed state on the device (from the eUICC's notifications
    /// or the device's own report).
    Profile {
        /// The profile.
        profile: ProfileKey,
        /// What happened to it.
        change: ProfileChange,
    },
    /// A network registration attempt by the device.
    Registration {
        /// The profile it registered with, when known.
        profile: Option<ProfileKey>,
        /// Registered, or the reject cause.
        outcome: RegistrationOutcome,
    },
    /// A data-path check (e.g. a ping through the new profile's network).
    DataPath {
        /// Round-trip latency measured by the device.
        latency_ms: u32,
        /// Lost probes in parts per thousand.
        loss_permille: u16,
    },
    /// A handover between cells or networks failed.
    HandoverFailure {
        /// The network's or the modem's cause value.
        cause: u16,
    },
}

impl EventKind {
    /// A short name per variant, for logs, JSON and Prometheus labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ActivationStarted { .. } => "activation_started",
            Self::Step { .. } => "step",
            Self::Euicc { .. } => "euicc",
            Self::Profile { .. } => "profile",
            Self::Registration { .. } => "registration",
            Self::DataPath { .. } => "data_path",
            Self::HandoverFailure { .. } => "handover_failure",
        }
    }
}

/// The interface a function belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interface {
    /// SGP.22 ES2+ (operator to SM-DP+, and its callbacks).
    Es2Plus,
    /// SGP.22 ES9+ (LPA or IPA to SM-DP+).
    Es9Plus,
    /// SGP.32 ESipa (IPA to eIM).
    Esipa,
}

impl Interface {
    /// `es2plus`, `es9plus` or `esipa`, as in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es2Plus => "es2plus",
            Self::Es9Plus => "es9plus",
            Self::Esipa => "esipa",
        }
    }
}

macro_rules! functions {
    ($($variant:ident => $iface:ident, $name:literal;)*) => {
        /// An ES2+, ES9+ or ESipa function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Function {
            $(
                #[doc = concat!("`", $name, "` over ", stringify!($iface), ".")]
                $variant,
            )*
        }

        impl Function {
            /// Every function.
            pub const ALL: &'static [Function] = &[$(Self::$variant),*];

            /// The interface it belongs to.
            pub fn interface(self) -> Interface {
                match self { $(Self::$variant => Interface::$iface,)* }
            }

            /// The SGP.22/SGP.32 function name (`getBoundProfilePackage`).
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

functions! {
    Es2DownloadOrder => Es2Plus, "downloadOrder";
    Es2ConfirmOrder => Es2Plus, "confirmOrder";
    Es2CancelOrder => Es2Plus, "cancelOrder";
    Es2ReleaseProfile => Es2Plus, "releaseProfile";
    Es2HandleDownloadProgressInfo => Es2Plus, "handleDownloadProgressInfo";
    Es9InitiateAuthentication => Es9Plus, "initiateAuthentication";
    Es9AuthenticateClient => Es9Plus, "authenticateClient";
    Es9GetBoundProfilePackage => Es9Plus, "getBoundProfilePackage";
    Es9HandleNotification => Es9Plus, "handleNotification";
    Es9CancelSession => Es9Plus, "cancelSession";
    IpaInitiateAuthentication => Esipa, "initiateAuthentication";
    IpaAuthenticateClient => Esipa, "authenticateClient";
    IpaGetBoundProfilePackage => Esipa, "getBoundProfilePackage";
    IpaGetEimPackage => Esipa, "getEimPackage";
    IpaProvideEimPackageResult => Esipa, "provideEimPackageResult";
    IpaTransferEimPackage => Esipa, "transferEimPackage";
    IpaHandleNotification => Esipa, "handleNotification";
    IpaCancelSession => Esipa, "cancelSession";
}

impl fmt::Display for Function {
    /// `es9plus.getBoundProfilePackage`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.interface().as_str(), self.name())
    }
}

impl FromStr for Function {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (iface, name) = s.split_once('.').ok_or(())?;
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.interface().as_str() == iface && f.name() == name)
            .ok_or(())
    }
}

/// The outcome of a function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// `Executed-Success` (or `Executed-WithWarning`).
    Ok,
    /// `Failed` with its SGP.22 status code.
    Failed(StatusCode),
    /// No answer: timeout, connection or TLS failure.
    Unreachable,
}

/// A subject code / reason code pair (SGP.22 5.1.6), e.g. `8.1.1` / `3.8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode {
    /// Subject code.
    pub subject: DottedCode,
    /// Reason code.
    pub reason: DottedCode,
}

impl fmt::Display for StatusCode {
    /// `8.1.1/3.8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.subject, self.reason)
    }
}

impl FromStr for StatusCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (subject, reason) = s.split_once('/').ok_or(())?;
        Ok(Self {
            subject: subject.parse()?,
            reason: reason.parse()?,
        })
    }
}

/// A dotted code of 1 to 4 numbers below 256 (`8.11.1`), packed in a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DottedCode(u32);

impl FromStr for DottedCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut packed = 0u32;
        for (parts, part) in s.split('.').enumerate() {
            if parts == 4 || part.is_empty() || part.len() > 3 {
                return Err(());
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u8 = part.parse().map_err(|_| ())?;
            // Stored as n + 1 so that "0" differs from an absent part.
            let n = u32::from(n) + 1;
            if n > 255 {
                return Err(());
            }
            packed |= n << (24 - 8 * parts);
        }
        Ok(Self(packed))
    }
}

impl fmt::Display for DottedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for i in 0..4 {
            let n = (self.0 >> (24 - 8 * i)) & 0xff;
            if n == 0 {
                break;
            }
            if !first {
                f.write_str(".")?;
            }
            write!(f, "{}", n - 1)?;
            first = false;
        }
        Ok(())
    }
}

/// The eUICC's answer for the activation's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EuiccOutcome {
    /// ProfileInstallationResult with success.
    Installed,
    /// A failure: where, and the eUICC's error reason.
    Failed {
        /// Which eUICC step failed.
        stage: EuiccStage,
        /// Its error reason (SGP.22 `errorReason` or ES10 result code).
        reason: u8,
    },
}

/// The eUICC step a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EuiccStage {
    /// ES10b AuthenticateServer.
    AuthenticateServer,
    /// ES10b PrepareDownload.
    PrepareDownload,
    /// ES10b LoadBoundProfilePackage (the BPP command id tells which part).
    LoadBoundProfilePackage {
        /// `bppCommandId` of ProfileInstallationResult (0..=3).
        bpp_command_id: u8,
    },
    /// ES10c Enable/Disable/Delete (IoT: as ordered by an eIM package).
    ProfileManagement,
}

/// A profile's state change on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileChange {
    /// Enabled: the device now uses it.
    Enabled,
    /// Disabled (still installed).
    Disabled,
    /// Deleted from the eUICC.
    Deleted,
}

/// The network's answer to a registration attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationOutcome {
    /// Registered (attach/registration accepted).
    Registered,
    /// Rejected with the network's cause (3GPP TS 24.301/24.501 EMM/5GMM cause).
    Rejected {
        /// The reject cause.
        cause: u16,
    },
    /// No answer from the network.
    NoResponse,
}

/// A profile named compactly by its ICCID's digits (19 or 20 digits, held as
/// 10 bytes of packed BCD). Telemetry keys profiles; it does not validate
/// ICCIDs (the producer did).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileKey([u8; 10]);

impl ProfileKey {
    /// From 1 to 20 decimal digits.
    pub fn from_digits(digits: &str) -> Option<Self> {
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut out = [0xffu8; 10];
        for (i, b) in digits.bytes().enumerate() {
            let nibble = b - b'0';
            let slot = &mut out[i / 2];
            *slot = if i % 2 == 0 {
                (*slot & 0x0f) | (nibble << 4)
            } else {
                (*slot & 0xf0) | nibble
            };
        }
        Some(Self(out))
    }
}

impl From<&ferrosim_ids::Iccid> for ProfileKey {
    /// The key of a validated ICCID (its 19 or 20 digits).
    fn from(iccid: &ferrosim_ids::Iccid) -> Self {
        let mut out = [0xffu8; 10];
        for (i, b) in iccid.as_str().bytes().take(20).enumerate() {
            let nibble = b.wrapping_sub(b'0') & 0x0f;
            let slot = &mut out[i / 2];
            *slot = if i % 2 == 0 {
                (*slot & 0x0f) | (nibble << 4)
            } else {
                (*slot & 0xf0) | nibble
            };
        }
        Self(out)
    }
}

impl fmt::Display for ProfileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            for nibble in [byte >> 4, byte & 0x0f] {
                if nibble > 9 {
                    return Ok(());
                }
                write!(f, "{nibble}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ProfileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stays_small() {
        assert!(
            std::mem::size_of::<Event>() <= 96,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

    #[test]
    fn codes_round_trip() {
        for s in ["8.1.1", "3.8", "8.11.1", "0", "1.2.3.4", "255.0"] {
            if s == "255.0" {
                assert!(s.parse::<DottedCode>().is_err());
                continue;
            }
            assert_eq!(s.parse::<DottedCode>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            ".",
            "1..2",
            "1.2.3.4.5",
            "a",
            "1.x",
            "256",
            "1234",
            "-1",
            "+1",
        ] {
            assert!(bad.parse::<DottedCode>().is_err(), "{bad}");
        }
        let code: StatusCode = "8.2.6/3.8".parse().unwrap();
        assert_eq!(code.to_string(), "8.2.6/3.8");
        assert!("8.2.6".parse::<StatusCode>().is_err());
    }

    #[test]
    fn functions_round_trip() {
        for f in Function::ALL {
            assert_eq!(f.to_string().parse::<Function>(), Ok(*f));
        }
        assert!("es9plus.nothing".parse::<Function>().is_err());
        assert!("getBoundProfilePackage".parse::<Function>().is_err());
    }

    #[test]
    fn profile_keys() {
        for s in ["8944000000000000019", "89440000000000000190", "1"] {
            assert_eq!(ProfileKey::from_digits(s).unwrap().to_string(), s);
        }
        assert_ne!(
            ProfileKey::from_digits("8944000000000000019"),
            ProfileKey::from_digits("89440000000000000190")
        );
        for bad in ["", "89x", "123456789012345678901"] {
            assert!(ProfileKey::from_digits(bad).is_none());
        }
        let iccid = ferrosim_ids::Iccid::new("8944000000000000019").unwrap();
        assert_eq!(
            ProfileKey::from(&iccid),
            ProfileKey::from_digits("8944000000000000019").unwrap()
        );
    }
}
