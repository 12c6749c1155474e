//! On-disk layout of a test PKI, modelled on the GSMA SGP.26 test set:
//!
//! ```text
//! DIR/README.md              what is where (written with the files)
//! DIR/CI/ci.pem              CI certificate          DIR/CI/ci.key.pem
//! DIR/EUM/eum.pem            EUM certificate         DIR/EUM/eum.key.pem
//! DIR/eUICC/<EID>.pem        one per eUICC           DIR/eUICC/<EID>.key.pem
//! DIR/DPauth/dpauth.pem      SM-DP+ authentication   DIR/DPauth/dpauth.key.pem
//! DIR/DPpb/dppb.pem          SM-DP+ profile binding  DIR/DPpb/dppb.key.pem
//! DIR/DPtls/dptls.pem        SM-DP+ TLS server       DIR/DPtls/dptls.key.pem
//! ```
//!
//! Certificates are PEM `CERTIFICATE`; keys are PEM `PRIVATE KEY` (PKCS#8),
//! unencrypted, created with permissions 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Issued, TestPki};
use crate::error::{Error, Result};
use crate::load;
use crate::profile::CertRole;

/// Name of the README written into the output directory.
pub const README_NAME: &str = "README.md";

/// Directory and file stem of each single certificate of the hierarchy.
const SINGLES: [(CertRole, &str, &str); 5] = [
    (CertRole::Ci, "CI", "ci"),
    (CertRole::Eum, "EUM", "eum"),
    (CertRole::DpAuth, "DPauth", "dpauth"),
    (CertRole::DpPb, "DPpb", "dppb"),
    (CertRole::DpTls, "DPtls", "dptls"),
];
/// Directory of the eUICC certificates.
const EUICC_DIR: &str = "eUICC";

/// Paths of a role's certificate and key inside `dir` (for every role but
/// eUICC, whose files are `eUICC/<EID>.pem` and `eUICC/<EID>.key.pem`).
///
/// ```text
/// CI/ci.pem          CI/ci.key.pem
/// EUM/eum.pem        EUM/eum.key.pem
/// DPauth/dpauth.pem  DPauth/dpauth.key.pem
/// DPpb/dppb.pem      DPpb/dppb.key.pem
/// DPtls/dptls.pem    DPtls/dptls.key.pem
/// ```
pub fn layout(dir: &Path, role: CertRole) -> Option<(PathBuf, PathBuf)> {
    SINGLES
        .iter()
        .find(|(r, _, _)| *r == role)
        .map(|(_, sub, stem)| {
            let d = dir.join(sub);
            (
                d.join(format!("{stem}.pem")),
                d.join(format!("{stem}.key.pem")),
            )
        })
}

impl TestPki {
    /// Writes the hierarchy to `dir` (created if missing). Refuses to replace
    /// an existing hierarchy: see [`TestPki::write_to_replacing`].
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        if let Some((ci, _)) = layout(dir, CertRole::Ci)
            && ci.exists()
        {
            return Err(Error::Layout {
                path: ci,
                problem: "a test PKI already exists here (use the replacing variant to overwrite)",
            });
        }
        self.write_files(dir)
    }

    /// Writes the hierarchy to `dir`, replacing any hierarchy already there
    /// (including eUICC files that the new hierarchy does not have).
    pub fn write_to_replacing(&self, dir: &Path) -> Result<()> {
        let euicc_dir = dir.join(EUICC_DIR);
        if euicc_dir.is_dir() {
            for entry in fs::read_dir(&euicc_dir).map_err(io(&euicc_dir))? {
                let path = entry.map_err(io(&euicc_dir))?.path();
                if path.extension().is_some_and(|e| e == "pem") {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
            }
        }
        self.write_files(dir)
    }

    /// Reads a hierarchy written by [`TestPki::write_to`], checking that each
    /// certificate has the expected role and each key matches its certificate.
    pub fn load_from(dir: &Path) -> Result<Self> {
        let single = |role: CertRole| -> Result<Issued> {
            let (cert, key) = layout(dir, role).ok_or(Error::Layout {
                path: dir.to_path_buf(),
                problem: "no file layout for this role",
            })?;
            read_issued(&cert, &key, role)
        };
        let euicc_dir = dir.join(EUICC_DIR);
        let mut euiccs = Vec::new();
        for entry in fs::read_dir(&euicc_dir).map_err(io(&euicc_dir))? {
            let path = entry.map_err(io(&euicc_dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(stem) = name.strip_suffix(".pem")
                && !stem.ends_with(".key")
            {
                let key = euicc_dir.join(format!("{stem}.key.pem"));
                euiccs.push(read_issued(&path, &key, CertRole::Euicc)?);
            }
        }
        euiccs.sort_by(|a, b| {
            a.certificate
                .subject_serial_number()
                .cmp(&b.certificate.subject_serial_number())
        });
        // eUICCs issued later name the same distribution point as the first one.
        let euicc_crl_distribution_points = euiccs
            .first()
            .map(|e| e.certificate.crl_distribution_points().to_vec())
            .unwrap_or_default();
        Ok(TestPki {
            euicc_crl_distribution_points,
            ci: single(CertRole::Ci)?,
            eum: single(CertRole::Eum)?,
            euiccs,
            dp_auth: single(CertRole::DpAuth)?,
            dp_pb: single(CertRole::DpPb)?,
            dp_tls: single(CertRole::DpTls)?,
        })
    }

    fn write_files(&self, dir: &Path) -> Result<()> {
        for (role, issued) in [
            (CertRole::Ci, &self.ci),
            (CertRole::Eum, &self.eum),
            (CertRole::DpAuth, &self.dp_auth),
            (CertRole::DpPb, &self.dp_pb),
            (CertRole::DpTls, &self.dp_tls),
        ] {
            if let Some((cert, key)) = layout(dir, role) {
                write_issued(issued, &cert, &key)?;
            }
        }
        let euicc_dir = dir.join(EUICC_DIR);
        for euicc in &self.euiccs {
            let eid = euicc.certificate.eid()?;
            write_issued(
                euicc,
                &euicc_dir.join(format!("{eid}.pem")),
                &euicc_dir.join(format!("{eid}.key.pem")),
            )?;
        }
        let readme = dir.join(README_NAME);
        fs::write(&readme, self.readme()).map_err(io(&readme))
    }

    /// The README describing the written hierarchy.
    fn readme(&self) -> String {
        let dp = &self.dp_tls.certificate;
        let eids: Vec<String> = self.eids().iter().map(ToString::to_string).collect();
        let ranges: Vec<String> = self
            .eum
            .certificate
            .eid_ranges()
            .all()
            .map(ToString::to_string)
            .collect();
        format!(
            "# ferrosim test PKI\n\
             \n\
             A GSMA RSP (SGP.22) certificate hierarchy for testing, shaped like the\n\
             SGP.26 test set. Generated by `ferrosim pki init`. The keys are test keys,\n\
             stored unencrypted: never use them in production.\n\
             \n\
             | file | role | policy | issued by |\n\
             |---|---|---|---|\n\
             | `CI/ci.pem` | Certificate Issuer (root, CA) | {ci} | itself |\n\
             | `EUM/eum.pem` | eUICC Manufacturer (CA, pathLen 0) | {eum} | CI |\n\
             | `eUICC/<EID>.pem` | eUICC, EID in subject serialNumber | {euicc} | EUM |\n\
             | `DPauth/dpauth.pem` | SM-DP+ authentication (serverSigned1) | {auth} | CI |\n\
             | `DPpb/dppb.pem` | SM-DP+ profile binding (smdpSigned2, BPP) | {pb} | CI |\n\
             | `DPtls/dptls.pem` | SM-DP+ TLS server (ES9+) | {tls} | CI |\n\
             \n\
             Each certificate's private key is beside it as `<name>.key.pem` (PKCS#8 PEM,\n\
             P-256, permissions 0600). Certificates are PEM; `openssl x509 -outform der`\n\
             converts them for tools that want DER.\n\
             \n\
             - CI key id (CI PKId, subjectKeyIdentifier): `{ci_id}`\n\
             - EUM permitted EID prefixes (nameConstraints): {ranges}\n\
             - SM-DP+ address (DPtls DNS name): `{address}`\n\
             - SM-DP+ OID (subjectAltName registeredID): `{oid}`\n\
             - eUICCs ({count}): {eids}\n\
             \n\
             A TLS client trusting `CI/ci.pem` as its root accepts `DPtls/dptls.pem` for\n\
             the SM-DP+ address. Inspect with `ferrosim pki show FILE`, check a chain with\n\
             `ferrosim pki verify --ci CI/ci.pem [--eum EUM/eum.pem] FILE`.\n",
            ci = CertRole::Ci.policy_oid(),
            eum = CertRole::Eum.policy_oid(),
            euicc = CertRole::Euicc.policy_oid(),
            auth = CertRole::DpAuth.policy_oid(),
            pb = CertRole::DpPb.policy_oid(),
            tls = CertRole::DpTls.policy_oid(),
            ci_id = self
                .ci
                .certificate
                .subject_key_id()
                .map(ToString::to_string)
                .unwrap_or_default(),
            ranges = ranges.join(", "),
            address = dp
                .dns_names()
                .iter()
                .cloned()
                .chain(dp.ip_addresses().iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            oid = dp
                .registered_ids()
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
            count = eids.len(),
            eids = eids.join(", "),
        )
    }
}

fn read_issued(cert_path: &Path, key_path: &Path, role: CertRole) -> Result<Issued> {
    let cert = load::certificate_from_file(cert_path)?;
    if cert.role() != Some(role) {
        return Err(Error::WrongPolicy {
            expected: role,
            found: cert.role(),
        });
    }
    let key_pem = Zeroizing::new(fs::read(key_path).map_err(io(key_path))?);
    let key = load::pkcs8_der_from_pem(&key_pem)?;
    Issued::new(cert, key)
}

fn write_issued(issued: &Issued, cert_path: &Path, key_path: &Path) -> Result<()> {
    if let Some(parent) = cert_path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::write(cert_path, issued.certificate_pem()).map_err(io(cert_path))?;
    write_secret(key_path, issued.key_pem().as_bytes())
}

/// Writes a file readable by its owner only (0600 on Unix).
fn write_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path).map_err(io(path))?;
        // An existing file keeps its old mode on open: tighten it explicitly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io(path))?;
        file.write_all(contents).map_err(io(path))
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path).map_err(io(path))?;
        file.write_all(contents).map_err(io(path))
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
