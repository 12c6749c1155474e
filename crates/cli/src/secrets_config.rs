//! `[secrets]` of the instance configuration: how long installed profiles
//! keep their K, OPc, PIN/PUK and ADM keys in the database, and the
//! key-encryption key that seals them at rest.
//!
//! ```toml
//! [secrets]
//! purge_after_install = "0s"   # a duration (30m, 12h, 7d) or "off"
//! kek_file = "/etc/ferrosim/kek"   # or FERROSIM_KEK_FILE / --kek-file
//! # or a key in a PKCS#11 token:
//! # kek_pkcs11_label = "ferrosim-kek"
//! # [secrets.kek_pkcs11]
//! # module = "/usr/lib/softhsm/libsofthsm2.so"
//! # token = "ferrosim"             # PIN in FERROSIM_PKCS11_PIN (pin_env)
//! ```
//!
//! By default `serve` purges them at its next housekeeping round after the
//! installation (`[orders] housekeeping_interval_secs`): an installed
//! profile is never built again and the operator's systems keep their
//! copy. `off` keeps them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use ferrosim_fleet::Span;
use serde::{Deserialize, Serialize};

/// The value of `purge_after_install` that keeps the secrets.
pub const KEEP: &str = "off";

/// The `[secrets]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// How long after its installation a profile keeps its K, OPc, PIN/PUK
    /// and ADM keys: a duration (`0s`, `12h`, `7d`) or `off` (kept).
    pub purge_after_install: String,
    /// The key-encryption key file (`ferrosim keys init`): with it, every
    /// command that opens the instance seals profile secrets in the
    /// database (AES-256-GCM under data keys it wraps), and `serve` seals
    /// the rows an older database holds in clear.
    pub kek_file: Option<PathBuf>,
    /// Instead of `kek_file`: the label of the key-encryption key (an
    /// AES-256 key, `ferrosim keys init --pkcs11-label`) in the token of
    /// `[secrets.kek_pkcs11]`; it never leaves the token.
    pub kek_pkcs11_label: Option<String>,
    /// The PKCS#11 token holding key-encryption keys.
    pub kek_pkcs11: Option<KekTokenConfig>,
}

/// `[secrets.kek_pkcs11]`: the token holding key-encryption keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KekTokenConfig {
    /// Module path, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// Environment variable holding the user PIN.
    #[serde(default = "default_pin_env")]
    pub pin_env: String,
}

fn default_pin_env() -> String {
    "FERROSIM_PKCS11_PIN".into()
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            purge_after_install: "0s".into(),
            kek_file: None,
            kek_pkcs11_label: None,
            kek_pkcs11: None,
        }
    }
}

impl SecretsConfig {
    /// Refuses settings that contradict each other: a KEK file and a token
    /// key at once, a token key without its token.
    pub fn check(&self) -> anyhow::Result<()> {
        self.retention()?;
        if self.kek_file.is_some() && self.kek_pkcs11_label.is_some() {
            anyhow::bail!(
                "[secrets]: give kek_file (FERROSIM_KEK_FILE, --kek-file) or kek_pkcs11_label, not both"
            );
        }
        if self.kek_pkcs11_label.is_some() && self.kek_pkcs11.is_none() {
            anyhow::bail!(
                "[secrets] kek_pkcs11_label needs [secrets.kek_pkcs11] with `module` and `token`"
            );
        }
        Ok(())
    }

    /// The retention `serve` applies (`None`: secrets kept), or a clear
    /// error for a value that is neither a duration nor `off`.
    pub fn retention(&self) -> anyhow::Result<Option<Duration>> {
        let text = self.purge_after_install.trim();
        if text == KEEP {
            return Ok(None);
        }
        Span::parse(text).map(|s| Some(s.duration())).map_err(|e| {
            anyhow!(
                "[secrets] purge_after_install = {:?}: {e}; give a duration such as \
                 \"0s\", \"12h\" or \"7d\", or \"off\" to keep the secrets of installed profiles",
                self.purge_after_install
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_off_and_garbage() {
        let with = |v: &str| SecretsConfig {
            purge_after_install: v.into(),
            ..SecretsConfig::default()
        };
        assert_eq!(
            SecretsConfig::default().retention().unwrap(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            with("7d").retention().unwrap(),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(with("off").retention().unwrap(), None);
        for bad in [
            "",
            "7",
            "7x",
            "-1d",
            "never",
            "OFF ",
            "1d-",
            "99999999999999999999d",
        ] {
            let e = with(bad).retention().unwrap_err().to_string();
            assert!(e.contains("purge_after_install"), "{bad}: {e}");
        }
    }
}
