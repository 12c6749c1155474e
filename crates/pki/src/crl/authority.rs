//! A CA of a `ferrosim pki init` directory acting on its revocation
//! register: the CI revokes EUM and SM-DP+ certificates, the EUM revokes
//! eUICC certificates ([`CrlIssuer`]). [`CrlAuthority::revoke`] records a
//! revocation after checking the certificate really is one this CA issued;
//! [`CrlAuthority::issue`] signs the CRL (whole or in parts) with the next
//! cRLNumber and writes it where the distribution point serves it from.
//!
//! Only the CA's certificate and key are read, so a directory whose SM-DP+
//! keys were moved into a PKCS#11 token (`ferrosim pki token-keys`) works.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferrosim_crypto::key::SoftwareKey;

use super::issue::{CrlRequest, issue_partial_crls};
use super::parse::{Crl, CrlNumber, CrlScope, RevocationReason, RevokedEntry};
use super::register::{CrlIssuer, Register, entry, last_crl_number, save_crl_number};
use crate::cert::RspCertificate;
use crate::error::{Error, Result};
use crate::generate::layout;
use crate::load;
use crate::profile::CertRole;
use crate::verify::check_issued_by;

impl CrlIssuer {
    /// The CA that revokes certificates of `role`: the EUM for eUICCs, the
    /// CI for EUM and SM-DP+ certificates. A CI is not revoked by a CRL
    /// (it is removed from the trust stores instead).
    pub fn for_role(role: CertRole) -> Option<Self> {
        match role {
            CertRole::Euicc => Some(Self::Eum),
            CertRole::Ci => None,
            _ => Some(Self::Ci),
        }
    }

    /// The role of the CA certificate.
    pub const fn role(self) -> CertRole {
        match self {
            Self::Ci => CertRole::Ci,
            Self::Eum => CertRole::Eum,
        }
    }

    /// Reads `ci` or `eum` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ci, Self::Eum]
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(text))
    }
}

/// What [`CrlAuthority::issue`] wrote.
#[derive(Debug)]
pub struct IssuedCrls {
    /// The CRL, or its parts in order.
    pub crls: Vec<Crl>,
    /// The files written, one per CRL.
    pub files: Vec<PathBuf>,
}

/// The CI or EUM of a hierarchy directory, with its key. See the module documentation.
pub struct CrlAuthority {
    issuer: CrlIssuer,
    dir: PathBuf,
    certificate: RspCertificate,
    key: SoftwareKey,
}

impl std::fmt::Debug for CrlAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlAuthority")
            .field("issuer", &self.issuer)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CrlAuthority {
    /// Reads the CA certificate and key of `issuer` from a `pki init` directory.
    pub fn load(dir: &Path, issuer: CrlIssuer) -> Result<Self> {
        let role = issuer.role();
        let (cert_path, key_path) = layout(dir, role).ok_or(Error::Layout {
            path: dir.to_path_buf(),
            problem: "no file layout for this role",
        })?;
        let certificate = load::certificate_from_file(&cert_path)?;
        if certificate.role() != Some(role) {
            return Err(Error::WrongPolicy {
                expected: role,
                found: certificate.role(),
            });
        }
        let key = load::key_from_file(&key_path)?;
        if ferrosim_crypto::key::KeySource::public_key_sec1(&key) != certificate.public_key_sec1() {
            return Err(Error::Layout {
                path: key_path,
                problem: "the key does not belong to the certificate beside it",
            });
        }
        Ok(Self {
            issuer,
            dir: dir.to_path_buf(),
            certificate,
            key,
        })
    }

    /// Which CA this is.
    pub fn issuer(&self) -> CrlIssuer {
        self.issuer
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &RspCertificate {
        &self.certificate
    }

    /// The certificates this CA has revoked so far.
    pub fn register(&self) -> Result<Register> {
        Register::load(&self.dir, self.issuer)
    }

    /// Records the revocation of `cert`, which must have been issued by this
    /// CA (names, key id and signature are checked). Returns the entry.
    pub fn revoke(
        &self,
        cert: &RspCertificate,
        revoked_at: SystemTime,
        reason: Option<RevocationReason>,
    ) -> Result<RevokedEntry> {
        let role = cert.role().ok_or_else(|| {
            Error::InvalidOption(
                "the certificate carries no GSMA RSP role policy (2.23.146.1.2.1.x)".into(),
            )
        })?;
        if CrlIssuer::for_role(role) != Some(self.issuer) {
            return Err(Error::InvalidOption(format!(
                "a {role} certificate is not revoked by the {}",
                self.issuer
            )));
        }
        check_issued_by(cert, role, &self.certificate, self.issuer.role())?;
        self.revoke_serial(cert.serial_number().to_vec(), revoked_at, reason)
    }

    /// Records the revocation of the certificate with this serial number
    /// (for a certificate file that is no longer at hand).
    pub fn revoke_serial(
        &self,
        serial: Vec<u8>,
        revoked_at: SystemTime,
        reason: Option<RevocationReason>,
    ) -> Result<RevokedEntry> {
        let mut register = self.register()?;
        let revoked = entry(serial, revoked_at, reason);
        register.record(revoked.clone())?;
        register.save(&self.dir, self.issuer)?;
        Ok(revoked)
    }

    /// Issues the CRL of everything revoked so far with the next cRLNumber,
    /// valid from `this_update` to `next_update`, as one CRL or `parts`
    /// partial CRLs, and writes it (DER) to `out`, or to `DIR/CRL/ci.crl`
    /// (`eum.crl`); parts go to `<stem>.part<N>.crl` beside it.
    pub fn issue(
        &self,
        this_update: SystemTime,
        next_update: SystemTime,
        parts: u32,
        out: Option<&Path>,
    ) -> Result<IssuedCrls> {
        let register = self.register()?;
        let number = last_crl_number(&self.dir, self.issuer)?
            .map_or_else(|| CrlNumber::new(1), |n| n.successor());
        let request = CrlRequest {
            number: number.clone(),
            this_update,
            next_update,
            entries: register.entries().to_vec(),
            scope: CrlScope::default(),
        };
        let crls = issue_partial_crls(&request, parts, &self.certificate, &self.key)?;
        let path = out.map_or_else(|| self.issuer.crl_path(&self.dir), Path::to_path_buf);
        let files: Vec<PathBuf> = if crls.len() == 1 {
            vec![path]
        } else {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(self.issuer.name())
                .to_owned();
            (1..=crls.len())
                .map(|n| path.with_file_name(format!("{stem}.part{n}.crl")))
                .collect()
        };
        for (crl, file) in crls.iter().zip(&files) {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            fs::write(file, crl.der()).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
        }
        // The number is recorded last: a failed write leaves it free for the retry.
        save_crl_number(&self.dir, self.issuer, &number)?;
        Ok(IssuedCrls { crls, files })
    }
}
