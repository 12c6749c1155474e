//! The revocation register of a hierarchy written by `ferrosim pki init`:
//! which certificates its CI and its EUM have revoked, and the last cRLNumber
//! each issued, so that `ferrosim pki revoke` records revocations and
//! `ferrosim pki crl` issues CRLs with growing numbers.
//!
//! ```text
//! DIR/CRL/ci-revoked.txt    revocations by the CI (EUM, DPauth, DPpb, DPtls)
//! DIR/CRL/eum-revoked.txt   revocations by the EUM (eUICCs)
//! DIR/CRL/ci.number         last cRLNumber the CI issued (decimal)
//! DIR/CRL/eum.number        last cRLNumber the EUM issued
//! ```
//!
//! A register line is `SERIAL REVOKED-AT [REASON]`: the serial number in hex
//! (as `ferrosim pki show` prints it), the revocation time
//! (`YYYY-MM-DDTHH:MM:SSZ`) and optionally an RFC 5280 reason name; `#`
//! starts a comment.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::parse::{CrlNumber, RevocationReason, RevokedEntry};
use crate::error::{Error, Result};
use crate::timefmt::{format_time, parse_time};

/// Directory of the register inside a hierarchy.
pub const CRL_DIR: &str = "CRL";

/// Which CA of a generated hierarchy issues the CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrlIssuer {
    /// The CI: revokes EUM and SM-DP+ certificates.
    Ci,
    /// The EUM: revokes eUICC certificates.
    Eum,
}

impl CrlIssuer {
    /// `ci` or `eum`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ci => "ci",
            Self::Eum => "eum",
        }
    }

    /// The register file in `dir`.
    pub fn register_path(self, dir: &Path) -> PathBuf {
        dir.join(CRL_DIR)
            .join(format!("{}-revoked.txt", self.name()))
    }

    /// The file holding the last cRLNumber issued.
    pub fn number_path(self, dir: &Path) -> PathBuf {
        dir.join(CRL_DIR).join(format!("{}.number", self.name()))
    }

    /// Where `ferrosim pki crl` writes the CRL by default (DER).
    pub fn crl_path(self, dir: &Path) -> PathBuf {
        dir.join(CRL_DIR).join(format!("{}.crl", self.name()))
    }
}

impl fmt::Display for CrlIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ci => "CI",
            Self::Eum => "EUM",
        })
    }
}

/// The certificates one CA has revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Register {
    entries: Vec<RevokedEntry>,
}

impl Register {
    /// Reads the register of `issuer` in `dir` (empty when there is none yet).
    pub fn load(dir: &Path, issuer: CrlIssuer) -> Result<Self> {
        let path = issuer.register_path(dir);
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Parses register text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut register = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let bad = |problem: String| Error::Register {
                path: path.to_path_buf(),
                line: i + 1,
                problem,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (serial, at, reason) = match fields.as_slice() {
                [serial, at] => (*serial, *at, None),
                [serial, at, reason] => (*serial, *at, Some(*reason)),
                _ => return Err(bad("expected SERIAL REVOKED-AT [REASON]".into())),
            };
            let serial = parse_serial(serial).map_err(bad)?;
            let revoked_at = parse_time(at).map_err(|e| bad(e.to_string()))?;
            let reason = reason
                .map(|r| {
                    RevocationReason::parse(r).ok_or_else(|| bad(format!("unknown reason {r:?}")))
                })
                .transpose()?;
            register
                .record(entry(serial, revoked_at, reason))
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(register)
    }

    /// Adds a revocation; a serial number already recorded is refused.
    pub fn record(&mut self, entry: RevokedEntry) -> Result<()> {
        if self.entries.iter().any(|e| e.serial == entry.serial) {
            return Err(Error::InvalidOption(format!(
                "serial {} is already revoked",
                hex::encode_upper(&entry.serial)
            )));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// The revocations, in the order recorded.
    pub fn entries(&self) -> &[RevokedEntry] {
        &self.entries
    }

    /// The register as text.
    pub fn to_text(&self, issuer: CrlIssuer) -> String {
        let mut out = format!(
            "# Certificates revoked by the {issuer} of this test PKI (`ferrosim pki revoke`).\n\
             # SERIAL (hex)  REVOKED-AT (UTC)  [REASON]\n"
        );
        for e in &self.entries {
            out.push_str(&hex::encode_upper(&e.serial));
            out.push(' ');
            out.push_str(&format_time(e.revoked_at));
            if let Some(r) = e.reason {
                out.push(' ');
                out.push_str(r.name());
            }
            out.push('\n');
        }
        out
    }

    /// Writes the register of `issuer` into `dir`.
    pub fn save(&self, dir: &Path, issuer: CrlIssuer) -> Result<()> {
        write(&issuer.register_path(dir), self.to_text(issuer).as_bytes())
    }
}

/// The last cRLNumber `issuer` issued, if any.
pub fn last_crl_number(dir: &Path, issuer: CrlIssuer) -> Result<Option<CrlNumber>> {
    let path = issuer.number_path(dir);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u128>()
            .map(|n| Some(CrlNumber::new(n)))
            .map_err(|_| Error::Register {
                path,
                line: 1,
                problem: "expected a decimal cRLNumber".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// Records the last cRLNumber `issuer` issued.
pub fn save_crl_number(dir: &Path, issuer: CrlIssuer, number: &CrlNumber) -> Result<()> {
    let n = number
        .to_u128()
        .ok_or_else(|| Error::InvalidOption("cRLNumber beyond 128 bits".into()))?;
    write(&issuer.number_path(dir), format!("{n}\n").as_bytes())
}

/// A revocation entry as recorded by `ferrosim pki revoke`.
pub fn entry(
    serial: Vec<u8>,
    revoked_at: SystemTime,
    reason: Option<RevocationReason>,
) -> RevokedEntry {
    RevokedEntry {
        serial,
        revoked_at,
        reason,
        invalidity_date: None,
        certificate_expiry: None,
    }
}

/// Reads a serial number in hex (as printed by `ferrosim pki show`; `:` separators allowed).
pub fn parse_serial(text: &str) -> std::result::Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&digits).map_err(|_| {
        format!(
            "serial {:?} is not hex",
            text.chars().take(64).collect::<String>()
        )
    })?;
    if bytes.is_empty() || bytes.len() > 20 {
        return Err("a serial number has 1 to 20 bytes".into());
    }
    // DER INTEGER content: minimal, positive as certificates carry it.
    if bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
        return Err("serial number with a redundant leading 00".into());
    }
    if bytes[0] & 0x80 != 0 {
        return Err("serial number is negative (prefix it with 00)".into());
    }
    Ok(bytes)
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    fs::write(path, contents).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let path = Path::new("r.txt");
        let text = "# comment\n4A01 2026-01-02T03:04:05Z keyCompromise\n\n7F 2026-01-01\n";
        let reg = Register::parse(text, path).unwrap();
        assert_eq!(reg.entries().len(), 2);
        assert_eq!(
            reg.entries()[0].reason,
            Some(RevocationReason::KeyCompromise)
        );
        let again = Register::parse(&reg.to_text(CrlIssuer::Ci), path).unwrap();
        assert_eq!(again, reg);
        for bad in [
            "zz 2026-01-01",
            "4A01",
            "4A01 yesterday",
            "4A01 2026-01-01 stolen",
            "4A01 2026-01-01 keyCompromise extra",
            "4A01 2026-01-01\n4A01 2026-01-02",
            "80 2026-01-01",
            "0001 2026-01-01",
        ] {
            assert!(Register::parse(bad, path).is_err(), "{bad}");
        }
    }
}
