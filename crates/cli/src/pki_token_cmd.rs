//! `ferrosim pki token-keys`: moves the SM-DP+'s signing keys into a PKCS#11
//! token.
//!
//! The DPauth and DPpb key pairs are generated inside the token (private
//! halves sensitive and non-extractable, so ferrosim never holds them and no
//! file does), their certificates are issued for the token's public keys
//! with the CI key of a `ferrosim pki init` directory, and written over the
//! directory's DPauth and DPpb certificates. The software keys there are then
//! removed, so no SM-DP+ signing key stays on disk. The user PIN is read from
//! an environment variable only, never from an argument that would land in
//! shell history or in the process list.
//!
//! Existing keys are never replaced: a label already in the token is refused
//! before anything is generated. Destroying a signing key is left to the
//! token's own tools, as a deliberate act.

use crate::pki_cmd::hex_upper;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use ferrosim_crypto::KeySource;
use ferrosim_crypto::key::SoftwareKey;
use ferrosim_crypto::pkcs11::Pkcs11Key;
use ferrosim_pki::generate::layout;
use ferrosim_pki::verify::verify_dp_certificate;
use ferrosim_pki::{
    CertRole, CertificateRequest, Oid, RspCertificate, TrustStore, format_time,
    issue_for_public_key, load,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;

/// Environment variable that holds the user PIN unless `--pin-env` names another.
const DEFAULT_PIN_ENV: &str = "FERROSIM_PKCS11_PIN";
/// Longest key label accepted (PKCS#11 sets no limit; tools display ~32-64).
const MAX_LABEL_LEN: usize = 64;

/// Arguments of `ferrosim pki token-keys`.
#[derive(Debug, Args)]
pub struct TokenKeysArgs {
    /// A `ferrosim pki init` directory: its CI certificate and key issue the
    /// new certificates, which replace its DPauth and DPpb certificates.
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, value_name = "LIBRARY")]
    module: PathBuf,
    /// Label of the token that receives the keys.
    #[arg(long, value_name = "LABEL", value_parser = parse_label)]
    token: String,
    /// Environment variable holding the token's user PIN (the PIN is never an argument).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PIN_ENV)]
    pin_env: String,
    /// CKA_LABEL of the new DPauth key pair.
    #[arg(long, value_name = "LABEL", default_value = "dpauth", value_parser = parse_label)]
    dpauth_label: String,
    /// CKA_LABEL of the new DPpb key pair.
    #[arg(long, value_name = "LABEL", default_value = "dppb", value_parser = parse_label)]
    dppb_label: String,
    /// SM-DP+ OID (subjectAltName registeredID); default: the one of the
    /// DPauth certificate being replaced.
    #[arg(long, value_name = "OID", value_parser = parse_oid)]
    smdp_oid: Option<Oid>,
    /// Validity of the new certificates in days from now (capped at the CI's
    /// end of validity); default: the validity of the certificates being replaced.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    validity_days: Option<u32>,
}

/// Runs `ferrosim pki token-keys`.
pub fn run(args: TokenKeysArgs) -> anyhow::Result<()> {
    if args.dpauth_label == args.dppb_label {
        bail!(
            "--dpauth-label and --dppb-label must differ (both are {:?})",
            args.dpauth_label
        );
    }
    if !args.module.is_file() {
        bail!("no PKCS#11 module at {}", args.module.display());
    }
    let pin = read_pin(&args.pin_env, &args.token)?;
    let now = SystemTime::now();
    let dir = PkiDir::load(&args.pki)?;
    let smdp_oid = match &args.smdp_oid {
        Some(oid) => oid.clone(),
        None => dir
            .dpauth
            .certificate
            .registered_ids()
            .first()
            .cloned()
            .with_context(|| {
                format!(
                    "{} carries no SM-DP+ OID: give --smdp-oid",
                    dir.dpauth.cert_path.display()
                )
            })?,
    };
    let plans = [
        Plan {
            role: CertRole::DpAuth,
            replaced: &dir.dpauth,
            label: &args.dpauth_label,
        },
        Plan {
            role: CertRole::DpPb,
            replaced: &dir.dppb,
            label: &args.dppb_label,
        },
    ];
    let requests = rehearse(&dir, &plans, &smdp_oid, args.validity_days, now)?;
    refuse_taken_labels(&args, &pin, &plans)?;
    let (keys, certificates) = generate_and_certify(&args, &pin, &dir, &plans, &requests, now)?;
    let removed = install(&plans, &certificates)?;
    note_in_readme(&args.pki, &args.token, &plans)?;
    report(&args, &plans, &keys, &certificates, &smdp_oid, &removed)
}

/// Builds the two certificate requests and issues each once for a throwaway
/// key: every check that could fail after the token has keys fails here
/// instead, with the token untouched.
fn rehearse(
    dir: &PkiDir,
    plans: &[Plan<'_>],
    smdp_oid: &Oid,
    validity_days: Option<u32>,
    now: SystemTime,
) -> anyhow::Result<Vec<CertificateRequest>> {
    let mut requests = Vec::with_capacity(plans.len());
    for plan in plans {
        let request = plan.request(smdp_oid, validity_days, &dir.ci, now)?;
        let probe = SoftwareKey::generate().context("generating a rehearsal key")?;
        dir.issue(&request, probe.public_key_sec1(), now)
            .with_context(|| format!("the new {} certificate would not verify", plan.role))?;
        requests.push(request);
    }
    Ok(requests)
}

/// Refuses labels that already name a key pair in the token, before anything
/// is generated.
fn refuse_taken_labels(args: &TokenKeysArgs, pin: &str, plans: &[Plan<'_>]) -> anyhow::Result<()> {
    for plan in plans {
        match Pkcs11Key::open(&args.module, &args.token, pin, plan.label) {
            Ok(_) => bail!(
                "token {:?} already holds a key pair labelled {:?}: keys are never replaced; \
                 choose another label, or delete the old key with the token's own tool first",
                args.token,
                plan.label
            ),
            // No usable pair under this label (or no such token): generating
            // decides, and refuses a lone private key of that label.
            Err(ferrosim_crypto::Error::Pkcs11Object(_)) => {}
            // A wrong PIN stops here, after one attempt: tokens lock after a few.
            Err(e) => {
                return Err(e).with_context(|| format!("opening token {:?}", args.token));
            }
        }
    }
    Ok(())
}

/// Generates the key pairs in the token, checks that they cannot leave it,
/// and issues their certificates.
fn generate_and_certify(
    args: &TokenKeysArgs,
    pin: &str,
    dir: &PkiDir,
    plans: &[Plan<'_>],
    requests: &[CertificateRequest],
    now: SystemTime,
) -> anyhow::Result<(Vec<Pkcs11Key>, Vec<RspCertificate>)> {
    let mut keys: Vec<Pkcs11Key> = Vec::with_capacity(plans.len());
    for plan in plans {
        let key =
            Pkcs11Key::generate(&args.module, &args.token, pin, plan.label).with_context(|| {
                format!(
                    "generating the {} key {:?} in token {:?}{}",
                    plan.role,
                    plan.label,
                    args.token,
                    orphans(&keys)
                )
            })?;
        keys.push(key);
    }
    let mut certificates = Vec::with_capacity(plans.len());
    for ((plan, request), key) in plans.iter().zip(requests).zip(&keys) {
        let protection = key.protection().with_context(|| {
            format!(
                "reading the attributes of {:?}{}",
                plan.label,
                orphans(&keys)
            )
        })?;
        if !protection.sensitive || protection.extractable {
            bail!(
                "the token did not make key {:?} sensitive and non-extractable \
                 (CKA_SENSITIVE {}, CKA_EXTRACTABLE {}): refusing to certify it{}",
                plan.label,
                protection.sensitive,
                protection.extractable,
                orphans(&keys)
            );
        }
        let cert = dir
            .issue(request, key.public_key_sec1(), now)
            .with_context(|| format!("issuing the {} certificate{}", plan.role, orphans(&keys)))?;
        certificates.push(cert);
    }
    Ok((keys, certificates))
}

/// Writes the certificates over the old ones, then removes the software keys
/// beside them, which now belong to nothing. Returns the removed files.
fn install(plans: &[Plan<'_>], certificates: &[RspCertificate]) -> anyhow::Result<Vec<PathBuf>> {
    for (plan, cert) in plans.iter().zip(certificates) {
        replace_file(&plan.replaced.cert_path, certificate_pem(cert).as_bytes())?;
    }
    let mut removed = Vec::new();
    for path in plans.iter().map(|p| &p.replaced.key_path) {
        match std::fs::remove_file(path) {
            Ok(()) => removed.push(path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "the certificates now name the token keys, but the old software key {} \
                         could not be removed: remove it by hand",
                        path.display()
                    )
                });
            }
        }
    }
    Ok(removed)
}

/// Prints what was done and the configuration snippet for the server.
fn report(
    args: &TokenKeysArgs,
    plans: &[Plan<'_>],
    keys: &[Pkcs11Key],
    certificates: &[RspCertificate],
    smdp_oid: &Oid,
    removed: &[PathBuf],
) -> anyhow::Result<()> {
    for ((plan, key), cert) in plans.iter().zip(keys).zip(certificates) {
        println!(
            "{} key {:?} generated in token {:?} (sensitive, not extractable)",
            plan.role,
            plan.label,
            key.token_label()
        );
        println!("  public key:  {}", hex_upper(key.public_key_sec1()));
        println!(
            "  certificate: {} (valid {} to {})",
            plan.replaced.cert_path.display(),
            format_time(cert.not_before()),
            format_time(cert.not_after())
        );
    }
    println!("  SM-DP+ OID:  {smdp_oid}");
    for path in removed {
        println!("removed software key {}", path.display());
    }
    let snippet = Snippet {
        pki: SnippetPki {
            dir: std::path::absolute(&args.pki).unwrap_or_else(|_| args.pki.clone()),
        },
        pkcs11: Pkcs11Config {
            module: std::path::absolute(&args.module).unwrap_or_else(|_| args.module.clone()),
            token: args.token.clone(),
            pin_env: args.pin_env.clone(),
            dpauth_label: args.dpauth_label.clone(),
            dppb_label: args.dppb_label.clone(),
        },
    };
    println!();
    println!(
        "Configuration for `ferrosim serve --config FILE` (the PIN stays in ${}):",
        args.pin_env
    );
    println!();
    print!(
        "{}",
        toml::to_string(&snippet).context("writing the configuration snippet")?
    );
    Ok(())
}

/// The `ferrosim pki init` directory: CI certificate and key, and the
/// SM-DP+ certificates being replaced.
struct PkiDir {
    ci: RspCertificate,
    ci_key: SoftwareKey,
    trust: TrustStore,
    dpauth: Replaced,
    dppb: Replaced,
}

/// A certificate about to be replaced, with where it and its software key are.
struct Replaced {
    certificate: RspCertificate,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl PkiDir {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let paths = |role| {
            layout(dir, role).with_context(|| format!("no file layout for {role} certificates"))
        };
        let cert = |path: &Path, role: CertRole| -> anyhow::Result<RspCertificate> {
            let c = load::certificate_from_file(path)
                .with_context(|| format!("reading the {role} certificate {}", path.display()))?;
            if c.role() != Some(role) {
                bail!("{} is not a {role} certificate", path.display());
            }
            Ok(c)
        };
        let replaced = |role| -> anyhow::Result<Replaced> {
            let (cert_path, key_path) = paths(role)?;
            Ok(Replaced {
                certificate: cert(&cert_path, role)?,
                cert_path,
                key_path,
            })
        };
        let (ci_cert, ci_key) = paths(CertRole::Ci)?;
        let ci = cert(&ci_cert, CertRole::Ci)?;
        let key = load::key_from_file(&ci_key).with_context(|| {
            format!(
                "reading the CI key {} (it issues the new certificates)",
                ci_key.display()
            )
        })?;
        if key.public_key_sec1() != ci.public_key_sec1() {
            bail!(
                "{} is not the key of {}",
                ci_key.display(),
                ci_cert.display()
            );
        }
        let trust = TrustStore::with_cis([ci.clone()])
            .with_context(|| format!("{} is not a usable CI certificate", ci_cert.display()))?;
        Ok(Self {
            ci,
            ci_key: key,
            trust,
            dpauth: replaced(CertRole::DpAuth)?,
            dppb: replaced(CertRole::DpPb)?,
        })
    }

    /// Issues a certificate for `public_key` and verifies it as an eUICC would.
    fn issue(
        &self,
        request: &CertificateRequest,
        public_key: &[u8],
        now: SystemTime,
    ) -> anyhow::Result<RspCertificate> {
        let cert = issue_for_public_key(request, public_key, &self.ci, &self.ci_key)?;
        verify_dp_certificate(&self.trust, &cert, request.role, now)?;
        Ok(cert)
    }
}

/// One key to generate and certify.
struct Plan<'a> {
    role: CertRole,
    replaced: &'a Replaced,
    label: &'a str,
}

impl Plan<'_> {
    /// The request for the new certificate: the subject of the one it
    /// replaces, the SM-DP+ OID, and the old or the asked-for validity.
    fn request(
        &self,
        smdp_oid: &Oid,
        validity_days: Option<u32>,
        ci: &RspCertificate,
        now: SystemTime,
    ) -> anyhow::Result<CertificateRequest> {
        let old = &self.replaced.certificate;
        let (not_before, not_after) = match validity_days {
            Some(days) => {
                let day = Duration::from_secs(86_400);
                let from = now.checked_sub(day).unwrap_or(now);
                (from, (now + day * days).min(ci.not_after()))
            }
            None => {
                if old.not_after() <= now {
                    bail!(
                        "the {} certificate being replaced expired on {}: give --validity-days",
                        self.role,
                        format_time(old.not_after())
                    );
                }
                (old.not_before(), old.not_after())
            }
        };
        let subject = old.subject();
        let common_name = attribute(subject.common_name(), |s| s.value().into_owned())?
            .with_context(|| format!("the {} certificate has no commonName", self.role))?;
        let mut request = CertificateRequest::new(self.role, common_name, not_before, not_after);
        request.organization = attribute(subject.organization(), |s| s.value().into_owned())?;
        request.organizational_unit =
            attribute(subject.organization_unit(), |s| s.value().into_owned())?;
        request.country = attribute(subject.country(), |s| s.as_str().to_owned())?;
        request.registered_id = Some(smdp_oid.clone());
        Ok(request)
    }
}

/// An optional subject attribute as text.
fn attribute<T, E: std::fmt::Display>(
    value: Result<Option<T>, E>,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<Option<String>> {
    value
        .map(|v| v.as_ref().map(text))
        .map_err(|e| anyhow::anyhow!("unreadable subject attribute: {e}"))
}

/// The part of the instance configuration that points at the token.
#[derive(Serialize)]
struct Snippet {
    pki: SnippetPki,
    pkcs11: Pkcs11Config,
}

#[derive(Serialize)]
struct SnippetPki {
    dir: PathBuf,
}

/// Reads the user PIN from the environment variable `name`.
fn read_pin(name: &str, token: &str) -> anyhow::Result<Zeroizing<String>> {
    let pin = match std::env::var(name) {
        Ok(pin) => Zeroizing::new(pin),
        Err(std::env::VarError::NotPresent) => bail!(
            "set the user PIN of token {token:?} in the environment variable {name} \
             (it is never taken as an argument; --pin-env names another variable)"
        ),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("the environment variable {name} is not valid UTF-8")
        }
    };
    if pin.is_empty() {
        bail!("the environment variable {name} is empty: it must hold the token's user PIN");
    }
    Ok(pin)
}

/// Tells which keys were already created when a later step fails.
fn orphans(keys: &[Pkcs11Key]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let labels: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.key_label()))
        .collect();
    format!(
        " (key pair(s) {} were created in the token and are not certified: \
         delete them with the token's tool before retrying)",
        labels.join(", ")
    )
}

/// Replaces a file by writing a sibling and renaming it over the original.
fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Appends where the DPauth and DPpb keys now are to the directory's README.
fn note_in_readme(dir: &Path, token: &str, plans: &[Plan<'_>]) -> anyhow::Result<()> {
    let readme = dir.join(ferrosim_pki::generate::README_NAME);
    if !readme.is_file() {
        return Ok(());
    }
    let mut text = std::fs::read_to_string(&readme)
        .with_context(|| format!("reading {}", readme.display()))?;
    text.push_str(&format!(
        "\n## SM-DP+ keys in a PKCS#11 token\n\n\
         `ferrosim pki token-keys` generated new {} key pairs in PKCS#11 token `{token}` \
         and replaced their certificates here; their software keys were removed.\n\n",
        plans
            .iter()
            .map(|p| p.role.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
    ));
    for plan in plans {
        text.push_str(&format!("- {}: key label `{}`\n", plan.role, plan.label));
    }
    replace_file(&readme, text.as_bytes())
}

fn certificate_pem(cert: &RspCertificate) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", cert.der().to_vec()))
}

fn parse_label(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_LABEL_LEN {
        return Err(format!("a label has 1 to {MAX_LABEL_LEN} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err("a label may not contain control characters".into());
    }
    Ok(s.to_owned())
}

fn parse_oid(s: &str) -> Result<Oid, String> {
    Oid::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
