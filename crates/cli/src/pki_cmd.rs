//! `ferrosim pki`: generate a test RSP hierarchy, show certificates and
//! CRLs, verify chains (with revocation), move the SM-DP+ keys into a PKCS#11
//! token (`token-keys`, in [`crate::pki_token_cmd`]), revoke certificates and
//! issue CRLs (`revoke`, `crl`, in [`crate::pki_crl_cmd`]).
//!
//! Thin wiring over `ferrosim-pki`; every check and every file format lives
//! there. Bad arguments and bad files end in a clear error, never a panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_pki::generate::{
    DEFAULT_EID_PREFIX, DEFAULT_SMDP_ADDRESS, DEFAULT_SMDP_OID, MAX_EUICC_COUNT,
};
use ferrosim_pki::verify::{
    check_validity, verify_dp_certificate, verify_euicc_certificates, verify_eum,
};
use ferrosim_pki::{
    CertRole, EidPrefix, Oid, RspCertificate, TestPki, TestPkiOptions, TrustStore, format_time,
    load, parse_time,
};

/// Arguments of `ferrosim pki`.
#[derive(Debug, Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Generate a complete test hierarchy (CI, EUM, eUICCs, DPauth, DPpb, DPtls) as PEM files.
    Init(InitArgs),
    /// Print a certificate's role, subject, EID or SM-DP+ OID, validity and
    /// key ids, or a CRL's issuer, number, dates and revoked serials.
    Show {
        /// Certificate or CRL file (PEM, possibly several, or DER).
        file: PathBuf,
    },
    /// Verify a certificate against trusted CIs (and CRLs); prints OK with
    /// the revocation status, or the named failure.
    Verify(VerifyArgs),
    /// Revoke a certificate of a `pki init` hierarchy (recorded in DIR/CRL/)
    /// and issue the updated CRL of its issuer.
    Revoke(crate::pki_crl_cmd::RevokeArgs),
    /// Issue the CRLs of a `pki init` hierarchy (CI: EUM and SM-DP+
    /// certificates; EUM: eUICCs) with the next cRLNumber, whole or in parts.
    Crl(crate::pki_crl_cmd::CrlArgs),
    /// Generate the DPauth and DPpb key pairs inside a PKCS#11 token, certify
    /// them with the directory's CI and remove the software keys (PIN from
    /// the environment; existing key labels are refused, never replaced).
    TokenKeys(crate::pki_token_cmd::TokenKeysArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of eUICC certificates.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_euicc_count)]
    euiccs: usize,
    /// SM-DP+ address (`host[:port]`): a host name goes into the DPtls
    /// certificate as a DNS name, an IP address (`127.0.0.1`, `[::1]`) as an
    /// IP address; the port is not part of the certificate.
    #[arg(long, value_name = "HOST[:PORT]", default_value = DEFAULT_SMDP_ADDRESS, value_parser = parse_host)]
    smdp_address: String,
    /// SM-DP+ OID (subjectAltName registeredID of the SM-DP+ certificates).
    #[arg(long, value_name = "OID", default_value = DEFAULT_SMDP_OID, value_parser = parse_oid)]
    smdp_oid: Oid,
    /// EID prefix of the EUM's range (1 to 30 digits); eUICC EIDs are numbered inside it.
    #[arg(long, value_name = "DIGITS", default_value = DEFAULT_EID_PREFIX, value_parser = parse_eid_prefix)]
    eid_prefix: EidPrefix,
    /// Validity of the CI, EUM and SM-DP+ certificates, in days from now.
    #[arg(long, value_name = "DAYS", default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    validity_days: u32,
    /// Replace a hierarchy already in DIR.
    #[arg(long)]
    force: bool,
    /// Base URL of the CRL distribution points: the EUM and SM-DP+
    /// certificates then name `<URL>/ci.crl`, the eUICC certificates
    /// `<URL>/eum.crl` (serve DIR/CRL/ there after `ferrosim pki crl`).
    #[arg(long, value_name = "URL", value_parser = parse_crl_base_url)]
    crl_base_url: Option<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Trusted CI certificate (PEM or DER; may be given several times, a PEM file may hold several).
    #[arg(long, value_name = "CI.pem", required = true)]
    ci: Vec<PathBuf>,
    /// EUM certificate, needed to verify an eUICC certificate.
    #[arg(long, value_name = "EUM.pem")]
    eum: Option<PathBuf>,
    /// Verification time instead of now (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    at: Option<SystemTime>,
    /// The certificate to verify (eUICC, EUM, DPauth, DPpb or DPtls).
    #[arg(value_name = "CERT.pem")]
    cert: PathBuf,
    #[command(flatten)]
    revocation: crate::pki_crl_cmd::RevocationArgs,
}

/// Runs `ferrosim pki ...`.
pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    match args.command {
        PkiCommand::Init(init) => run_init(init),
        PkiCommand::Show { file } => run_show(&file),
        PkiCommand::Verify(verify) => run_verify(verify),
        PkiCommand::TokenKeys(keys) => crate::pki_token_cmd::run(keys),
        PkiCommand::Revoke(revoke) => crate::pki_crl_cmd::run_revoke(revoke),
        PkiCommand::Crl(crl) => crate::pki_crl_cmd::run_crl(crl),
    }
}

fn run_init(args: InitArgs) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let not_before = now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now);
    let options = TestPkiOptions {
        euicc_count: args.euiccs,
        eid_prefix: args.eid_prefix,
        smdp_address: args.smdp_address,
        smdp_oid: args.smdp_oid,
        not_before,
        not_after: now + Duration::from_secs(86_400) * args.validity_days,
        crl_base_url: args.crl_base_url,
        ..TestPkiOptions::default()
    };
    let pki = TestPki::generate(&options).context("generating the test PKI")?;
    let written = if args.force {
        pki.write_to_replacing(&args.out)
    } else {
        pki.write_to(&args.out)
    };
    written.with_context(|| format!("writing the test PKI to {}", args.out.display()))?;

    let ci_id = pki
        .ci
        .certificate
        .subject_key_id()
        .map(ToString::to_string)
        .unwrap_or_default();
    println!("test PKI written to {}", args.out.display());
    println!("  CI key id:      {ci_id}");
    println!("  SM-DP+ address: {}", options.smdp_address);
    println!("  SM-DP+ OID:     {}", options.smdp_oid);
    println!("  EID range:      {}", options.eid_prefix);
    if let Some(url) = &options.crl_base_url {
        println!("  CRLs published: {url}/ci.crl, {url}/eum.crl");
    }
    println!("  eUICCs:         {}", pki.euiccs.len());
    for eid in pki.eids() {
        println!("    {eid}");
    }
    Ok(())
}

fn run_show(file: &Path) -> anyhow::Result<()> {
    let certs = match load::certificates_from_file(file) {
        Ok(certs) => certs,
        Err(e) => {
            // Not a certificate: perhaps a CRL.
            let bytes = std::fs::read(file).unwrap_or_default();
            if let Ok(crls) = ferrosim_pki::Crl::all_from_bytes(&bytes) {
                crate::pki_crl_cmd::show_crls(&crls);
                return Ok(());
            }
            return Err(e).with_context(|| format!("reading certificate {}", file.display()));
        }
    };
    for (i, cert) in certs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_certificate(cert);
    }
    Ok(())
}

fn print_certificate(cert: &RspCertificate) {
    let role = match cert.role() {
        Some(role) => format!("{role} (policy {})", role.policy_oid()),
        None => "none (no RSP role policy)".to_string(),
    };
    let policies: Vec<String> = cert.policies().iter().map(ToString::to_string).collect();
    println!("role:             {role}");
    if !policies.is_empty() {
        println!("policies:         {}", policies.join(", "));
    }
    println!("subject:          {}", cert.subject());
    println!("issuer:           {}", cert.issuer());
    println!("serial number:    {}", hex_upper(cert.serial_number()));
    println!("not before:       {}", format_time(cert.not_before()));
    println!("not after:        {}", format_time(cert.not_after()));
    if let Some(ski) = cert.subject_key_id() {
        println!("subject key id:   {ski}");
    }
    if let Some(aki) = cert.authority_key_id() {
        println!("authority key id: {aki}");
    }
    match cert.key_usage() {
        Some(usage) => println!("key usage:        {usage}"),
        None => println!("key usage:        (extension absent)"),
    }
    if !cert.extended_key_usage().is_empty() {
        let eku: Vec<String> = cert
            .extended_key_usage()
            .iter()
            .map(|oid| match oid.to_string().as_str() {
                "1.3.6.1.5.5.7.3.1" => "serverAuth".to_string(),
                "1.3.6.1.5.5.7.3.2" => "clientAuth".to_string(),
                other => other.to_string(),
            })
            .collect();
        println!("ext. key usage:   {}", eku.join(", "));
    }
    match cert.path_len_constraint() {
        Some(n) if cert.is_ca() => println!("CA:               yes, path length {n}"),
        _ => println!(
            "CA:               {}",
            if cert.is_ca() { "yes" } else { "no" }
        ),
    }
    println!("public key:       {}", hex_upper(cert.public_key_sec1()));
    if let Some(serial) = cert.subject_serial_number() {
        match cert.eid() {
            Ok(eid) => println!("EID:              {eid}"),
            Err(e) => println!("subject serial:   {serial} ({e})"),
        }
    }
    let ranges = cert.eid_ranges();
    if !ranges.name_constraints.is_empty() {
        println!(
            "EID ranges:       {} (nameConstraints)",
            join(&ranges.name_constraints)
        );
    }
    if !ranges.permitted_eins.is_empty() {
        println!(
            "EID ranges:       {} (permittedEins)",
            join(&ranges.permitted_eins)
        );
    }
    if !cert.registered_ids().is_empty() {
        let label = if cert.role().is_some_and(CertRole::is_smdp) {
            "SM-DP+ OID:  "
        } else {
            "registered ID:"
        };
        println!("{label}    {}", join(cert.registered_ids()));
    }
    if !cert.dns_names().is_empty() {
        println!("DNS names:        {}", cert.dns_names().join(", "));
    }
    if !cert.crl_distribution_points().is_empty() {
        println!(
            "CRL dist. points: {}",
            cert.crl_distribution_points().join(", ")
        );
    }
    if !cert.ip_addresses().is_empty() {
        println!("IP addresses:     {}", join(cert.ip_addresses()));
    }
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let now = args.at.unwrap_or_else(SystemTime::now);
    let mut trust = TrustStore::new();
    for path in &args.ci {
        let cis = load::certificates_from_file(path)
            .with_context(|| format!("reading CI certificate {}", path.display()))?;
        for ci in cis {
            trust
                .add_ci(ci)
                .with_context(|| format!("{} is not a usable CI certificate", path.display()))?;
        }
    }
    let cert = load::certificate_from_file(&args.cert)
        .with_context(|| format!("reading certificate {}", args.cert.display()))?;
    let failed = || format!("{} does not verify", args.cert.display());
    let eum = match (cert.role(), &args.eum) {
        (Some(CertRole::Euicc), None) => bail!(
            "{} is an eUICC certificate: give its EUM with --eum",
            args.cert.display()
        ),
        (Some(CertRole::Euicc), Some(path)) => Some(
            load::certificate_from_file(path)
                .with_context(|| format!("reading EUM certificate {}", path.display()))?,
        ),
        _ => None,
    };
    let revocation = &args.revocation;
    let certs: Vec<&RspCertificate> = std::iter::once(&cert).chain(eum.as_ref()).collect();
    let awaiting = revocation.prepare(&mut trust, &certs, now)?;
    let ci_of = |id: &ferrosim_pki::KeyId| trust.ci(id).cloned();

    match cert.role() {
        Some(CertRole::Euicc) => {
            let eum = eum.context("an eUICC certificate needs its EUM")?;
            let v = verify_euicc_certificates(&trust, &eum, &cert, now).with_context(failed)?;
            println!(
                "OK: eUICC certificate, EID {} (EUM {}, CI {})",
                v.eid, v.eum_key_id, v.ci_key_id
            );
            if let Some(ci) = ci_of(&v.ci_key_id) {
                revocation.report(&trust, &eum, CertRole::Eum, &ci, now);
            }
            revocation.report(&trust, &cert, CertRole::Euicc, &eum, now);
            crate::pki_crl_cmd::print_warnings(&v.revocation_warnings);
        }
        Some(CertRole::Eum) => {
            let id = verify_eum(&trust, &cert, now).with_context(failed)?;
            println!("OK: EUM certificate (CI {id})");
            if let Some(ci) = ci_of(&id) {
                revocation.report(&trust, &cert, CertRole::Eum, &ci, now);
            }
        }
        Some(CertRole::Ci) => {
            // A CI verifies on its own (profile, self-signature, validity) and must be trusted.
            let id = TrustStore::new()
                .add_ci(cert.clone())
                .with_context(failed)?;
            check_validity(&cert, CertRole::Ci, now).with_context(failed)?;
            if trust.ci(&id).is_none() {
                bail!("{}: CI {id} is not one of the trusted CIs", failed());
            }
            println!("OK: CI certificate {id}");
        }
        Some(role) if role.is_smdp() => {
            let v = verify_dp_certificate(&trust, &cert, role, now).with_context(failed)?;
            let names: Vec<String> = v
                .dns_names
                .iter()
                .cloned()
                .chain(v.certificate.ip_addresses().iter().map(ToString::to_string))
                .collect();
            let dns = if names.is_empty() {
                String::new()
            } else {
                format!(", {}", names.join(", "))
            };
            println!(
                "OK: {role} certificate, SM-DP+ OID {}{dns} (CI {})",
                v.smdp_oid, v.ci_key_id
            );
            if let Some(ci) = ci_of(&v.ci_key_id) {
                revocation.report(&trust, &cert, role, &ci, now);
            }
            crate::pki_crl_cmd::print_warnings(&v.revocation_warnings);
        }
        Some(role) => bail!(
            "{}: verifying {role} certificates is not supported",
            args.cert.display()
        ),
        None => bail!(
            "{}: the certificate carries no GSMA RSP role policy (2.23.146.1.2.1.x)",
            args.cert.display()
        ),
    }
    revocation.warn_unused(&trust, &awaiting);
    Ok(())
}

fn parse_euicc_count(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if n > MAX_EUICC_COUNT {
        return Err(format!("at most {MAX_EUICC_COUNT} eUICCs"));
    }
    Ok(n)
}

fn parse_host(s: &str) -> Result<String, String> {
    ferrosim_pki::generate::SmdpHost::parse(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_oid(s: &str) -> Result<Oid, String> {
    Oid::parse(s).map_err(|e| e.to_string())
}

fn parse_eid_prefix(s: &str) -> Result<EidPrefix, String> {
    EidPrefix::parse(s).map_err(|e| e.to_string())
}

fn parse_crl_base_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || s.len() > 1024 {
        return Err(format!("{s:?}: expected an http:// or https:// URL"));
    }
    if s.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{s:?}: a URL has no spaces or non-ASCII characters"
        ));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_at(s: &str) -> Result<SystemTime, String> {
    parse_time(s).map_err(|e| e.to_string())
}

/// Bytes as upper-case hex, as SGP.22 and GSMA documents print key ids.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
