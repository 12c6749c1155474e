//! What the eUICC remembers across power cycles: installed profiles, pending
//! notifications, the notification sequence number and the configured
//! addresses, kept as JSON in a state file.
//!
//! [`EuiccState::save`] writes a temporary file beside the target, flushes
//! it to disk and renames it over the target, so a crash leaves either the
//! old or the new state, never a mix. The file holds subscriber secrets (K,
//! OPc, PINs) as hex and is created readable by its owner only.
//!
//! The file carries a format `version` ([`STATE_VERSION`]). Files without
//! one are version 1, written before the state was slimmed down: they kept
//! each profile's whole package and raw metadata and each enable, disable
//! or delete notification with the eUICC and EUM certificates appended.
//! [`EuiccState::load`] migrates them (the package becomes its length and
//! SHA-256, the certificates are dropped and added back when the
//! notification is retrieved); the next save writes the current version.
//! A file of a later version than this build knows is refused.
//!
//! Nothing here talks to the card logic: [`crate::VirtualEuicc`] changes the
//! state, the caller decides when to save it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferrosim_ids::{Iccid, TransactionId};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::profile::{InstalledProfile, NotificationOperation, ProfileState};

/// The GSMA root SM-DS address, used when no other is configured.
pub const DEFAULT_ROOT_SMDS_ADDRESS: &str = "lpa.ds.gsma.com";
/// The state file format this build writes (and the newest it reads).
pub const STATE_VERSION: u32 = 2;

/// The persistent state of a virtual eUICC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct EuiccState {
    /// Installed profiles, in installation order.
    pub profiles: Vec<InstalledProfile>,
    /// Signed notifications not yet removed by the LPA (NotificationSent).
    pub notifications: Vec<StoredNotification>,
    /// The last notification sequence number used (0: none yet).
    pub last_seq_number: u64,
    /// The default SM-DP+ address (ES10a SetDefaultDpAddress).
    pub default_smdp_address: Option<String>,
    /// The root SM-DS address; [`DEFAULT_ROOT_SMDS_ADDRESS`] when absent.
    pub root_smds_address: Option<String>,
    /// ISD-P AIDs handed out so far (each installation gets a fresh one).
    pub isdp_counter: u32,
    /// The eIMs associated with this eUICC (SGP.32: AddInitialEim), each
    /// with the key its packages are verified with and the last counter
    /// value accepted. Empty on a consumer eUICC.
    pub eims: Vec<EimEntry>,
    /// SGP.32 profile switching (fallback profile, rollback point, Fallback
    /// Mechanism in use, immediate enable): boxed and absent until first
    /// used, so a consumer eUICC pays one pointer for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switching: Option<Box<Switching>>,
}

/// What an IoT eUICC remembers about profile switching (SGP.32 v1.2).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
#[serde(default)]
pub struct Switching {
    /// ICCID (digits) of the one profile with the fallback attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Iccid>,
    /// Set by an enable with rollbackFlag: what ProfileRollback returns to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPoint>,
    /// Set while the Fallback Mechanism is in use: the profile enabled
    /// before it (ReturnFromFallback enables it again), if there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_fallback: Option<FallbackPoint>,
    /// Immediate profile enabling, as configured by the eIM
    /// (configureImmediateEnable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immediate_enable: Option<ImmediateEnableConfig>,
    /// The profile installed last, until it is enabled or another profile
    /// operation happens: what ImmediateEnable enables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub just_installed: Option<Iccid>,
}

impl Switching {
    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What an enable with rollbackFlag left for ProfileRollback.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct RollbackPoint {
    /// The profile the package enabled.
    pub enabled: Iccid,
    /// The profile enabled before it (none: no profile was enabled).
    pub previous: Option<Iccid>,
    /// The eIM whose package granted the rollback.
    pub eim_id: String,
    /// That package's counter value (the rollback's result carries it).
    pub counter: u32,
    /// That package's eimTransactionId, when it had one.
    #[serde(with = "hex_bytes::transaction_id", default)]
    pub transaction_id: Option<TransactionId>,
}

/// The Fallback Mechanism in use.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct FallbackPoint {
    /// The profile enabled before the fallback profile, if any.
    pub previous: Option<Iccid>,
}

/// configureImmediateEnable as the eUICC keeps it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct ImmediateEnableConfig {
    /// immediateEnableFlag: ImmediateEnable is allowed.
    pub allowed: bool,
    /// defaultSmdpAddress, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_smdp_address: Option<String>,
}

/// One associated eIM, as the eUICC keeps it (SGP.32 EimConfigurationData
/// reduced to what the eUICC needs to verify packages and answer
/// GetEimConfigurationData).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct EimEntry {
    /// `eimId`.
    pub eim_id: String,
    /// `eimFqdn`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// `eimIdType`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_type: Option<i64>,
    /// The last `counterValue` accepted (or the initial one configured):
    /// a package must carry a greater one.
    pub counter: u32,
    /// The association token appended to signature inputs, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_token: Option<i64>,
    /// The eIM's P-256 public key (SEC1 uncompressed point), which
    /// eimSignature is verified with.
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
}

/// A signed notification waiting to be delivered by the LPA.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct StoredNotification {
    /// Its sequence number.
    pub seq_number: u64,
    /// What happened.
    pub operation: NotificationOperation,
    /// Where the LPA must send it (FQDN).
    pub address: String,
    /// The profile concerned, when known.
    pub iccid: Option<Iccid>,
    /// What the eUICC signed: a whole ProfileInstallationResult (`BF37`),
    /// or for the other operations `tbsOtherNotification` (`BF2F`) followed
    /// by its signature (`5F37`). The eUICC and EUM certificates that
    /// complete an OtherSignedNotification are the card's own and are added
    /// when the notification leaves the card
    /// ([`crate::VirtualEuicc::pending_notification`]), not stored with
    /// each notification.
    #[serde(with = "hex_bytes")]
    pub signed: Vec<u8>,
}

/// The state file: the format version beside the state.
#[derive(Serialize)]
struct VersionedRef<'a> {
    version: u32,
    #[serde(flatten)]
    state: &'a EuiccState,
}

impl EuiccState {
    /// Reads a state file written by [`EuiccState::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::StateIo {
            path: path.to_path_buf(),
            source,
        })?;
        let format = |source| Error::StateFormat {
            path: path.to_path_buf(),
            source,
        };
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(format)?;
        let version = match value.get("version") {
            None => 1,
            Some(v) => match v.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(v) if v >= 1 => v,
                _ => {
                    return Err(Error::StateVersion {
                        path: path.to_path_buf(),
                        found: v.to_string(),
                    });
                }
            },
        };
        if version > STATE_VERSION {
            return Err(Error::StateVersion {
                path: path.to_path_buf(),
                found: version.to_string(),
            });
        }
        if version < 2 {
            crate::migrate::v1_to_v2(&mut value);
        }
        let state: Self = serde_json::from_value(value).map_err(format)?;
        for profile in &state.profiles {
            profile.check().map_err(|problem| Error::StateContent {
                path: path.to_path_buf(),
                problem,
            })?;
        }
        Ok(state)
    }

    /// Reads a state file, or returns an empty state when the file does not exist.
    pub fn load_or_default(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    /// Writes the state atomically: a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let io = |source| Error::StateIo {
            path: path.to_path_buf(),
            source,
        };
        let versioned = VersionedRef {
            version: STATE_VERSION,
            state: self,
        };
        let json = serde_json::to_vec_pretty(&versioned).map_err(|source| Error::StateFormat {
            path: path.to_path_buf(),
            source,
        })?;
        let tmp = temp_path(path);
        let result = (|| {
            let mut file = create_private(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)?;
            sync_parent(path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// The installed profile with this ICCID (an [`Iccid`] or its digits).
    pub fn profile<I: AsRef<str> + ?Sized>(&self, iccid: &I) -> Option<&InstalledProfile> {
        let iccid = iccid.as_ref();
        self.profiles.iter().find(|p| p.iccid == iccid)
    }

    /// The enabled profile, if any.
    pub fn enabled_profile(&self) -> Option<&InstalledProfile> {
        self.profiles
            .iter()
            .find(|p| p.state == ProfileState::Enabled)
    }

    /// The root SM-DS address in effect.
    pub fn root_smds(&self) -> &str {
        self.root_smds_address
            .as_deref()
            .unwrap_or(DEFAULT_ROOT_SMDS_ADDRESS)
    }

    /// Takes the next notification sequence number.
    pub(crate) fn next_seq_number(&mut self) -> u64 {
        self.last_seq_number = self.last_seq_number.saturating_add(1);
        self.last_seq_number
    }
}

/// `.<name>.tmp` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    path.with_file_name(format!(".{name}.tmp"))
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes the rename durable (Unix: fsync the directory).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Serde helper: a [`Timestamp`](ferrosim_ids::Timestamp) kept as whole
/// seconds since the Unix epoch (an unsigned integer), the form state files
/// have always had for installation times.
pub(crate) mod unix_seconds {
    use ferrosim_ids::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `t` truncated to a whole second, and never before the epoch (what
    /// the stored form can hold).
    pub fn whole_seconds(t: Timestamp) -> Timestamp {
        Timestamp::from_millis(t.millis().max(0) / 1000 * 1000)
    }

    /// Serialises the whole seconds since the epoch (0 before it).
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(t.millis().max(0) / 1000).unwrap_or(0))
    }

    /// Deserialises seconds since the epoch; a count too large for a
    /// [`Timestamp`] is refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let seconds = u64::deserialize(d)?;
        i64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map(Timestamp::from_millis)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("installation time {seconds} s is out of range"))
            })
    }
}

/// Serde helpers: bytes as lower-case hex strings.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Deserialises hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text.trim()).map_err(serde::de::Error::custom)
    }

    /// The same for boxed byte slices.
    pub mod boxed {
        use serde::{Deserializer, Serializer};

        /// Serialises bytes as hex.
        pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
            super::serialize(bytes, s)
        }

        /// Deserialises hex into boxed bytes.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
            super::deserialize(d).map(Vec::into_boxed_slice)
        }
    }

    /// The same for byte arrays of a fixed length.
    pub mod fixed {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises a byte array as hex.
        pub fn serialize<S: Serializer, const N: usize>(
            bytes: &[u8; N],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(bytes))
        }

        /// Deserialises hex of exactly `N` bytes.
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<[u8; N], D::Error> {
            let text = String::deserialize(d)?;
            let bytes = hex::decode(text.trim()).map_err(serde::de::Error::custom)?;
            <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
                serde::de::Error::custom(format!("expected {N} bytes, got {}", bytes.len()))
            })
        }
    }

    /// An optional [`TransactionId`](ferrosim_ids::TransactionId) as
    /// lower-case hex or null (the form state files had when it was bytes);
    /// hex that is not 1 to 16 bytes is refused.
    pub mod transaction_id {
        use ferrosim_ids::TransactionId;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises the id as lower-case hex or null.
        pub fn serialize<S: Serializer>(
            id: &Option<TransactionId>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => s.serialize_some(&hex::encode(id.as_bytes())),
                None => s.serialize_none(),
            }
        }

        /// Deserialises hex (either case) or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<TransactionId>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| TransactionId::from_hex(t.trim()).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    /// The same for optional values.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises optional bytes as hex or null.
        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => s.serialize_some(&hex::encode(b)),
                None => s.serialize_none(),
            }
        }

        /// Deserialises hex or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| hex::decode(t.trim()).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("euicc.json");
        let mut state = EuiccState::default();
        assert_eq!(EuiccState::load_or_default(&path).unwrap(), state);
        state.default_smdp_address = Some("smdp.example.com".into());
        let seq_number = state.next_seq_number();
        state.notifications.push(StoredNotification {
            seq_number,
            operation: NotificationOperation::Enable,
            address: "smdp.example.com".into(),
            iccid: Some("8949449999999990049".parse().unwrap()),
            signed: vec![0x30, 0x00],
        });
        state.save(&path).unwrap();
        assert_eq!(EuiccState::load(&path).unwrap(), state);
        assert!(!temp_path(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Overwrite in place.
        state.last_seq_number = 41;
        state.save(&path).unwrap();
        assert_eq!(EuiccState::load(&path).unwrap().last_seq_number, 41);
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        assert!(matches!(
            EuiccState::load(&path),
            Err(Error::StateIo { .. })
        ));
        std::fs::write(&path, b"{\"profiles\": 3}").unwrap();
        assert!(matches!(
            EuiccState::load(&path),
            Err(Error::StateFormat { .. })
        ));
        std::fs::write(&path, b"{\"notifications\": [{\"seq_number\": 1, \"operation\": \"install\", \"address\": \"a\", \"iccid\": null, \"signed\": \"zz\"}]}").unwrap();
        assert!(matches!(
            EuiccState::load(&path),
            Err(Error::StateFormat { .. })
        ));
        // Unknown and missing fields are tolerated (older or newer files).
        std::fs::write(&path, b"{\"future_field\": true}").unwrap();
        assert_eq!(EuiccState::load(&path).unwrap(), EuiccState::default());
    }
}
