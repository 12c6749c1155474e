//! `ferrosim pki revoke` and `ferrosim pki crl`: revocation for a hierarchy
//! made by `ferrosim pki init` (its CI revokes EUM and SM-DP+ certificates,
//! its EUM revokes eUICC certificates), and the revocation part of
//! `ferrosim pki verify` (`--crl FILE`, `--fetch-crls`, `--stale`).
//!
//! Thin wiring over `ferrosim_pki::crl`; the register format, CRL issuing
//! and every check live there.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use ferrosim_pki::crl::authority::{CrlAuthority, IssuedCrls};
use ferrosim_pki::crl::fetch::{CrlFetcher, FetchOptions};
use ferrosim_pki::crl::register::{CrlIssuer, parse_serial};
use ferrosim_pki::crl::{CrlStatus, LoadOutcome, RevocationWarning};
use ferrosim_pki::{
    CertRole, Crl, KeyId, RevocationPolicy, RevocationReason, RspCertificate, StalePolicy,
    TrustStore, format_time, load, parse_time,
};

/// Arguments of `ferrosim pki revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The hierarchy directory written by `ferrosim pki init`.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The certificate to revoke (an eUICC is revoked by the EUM, an EUM,
    /// DPauth, DPpb or DPtls by the CI). Or give --serial and --issuer.
    #[arg(value_name = "CERT.pem", required_unless_present = "serial")]
    cert: Option<PathBuf>,
    /// Serial number (hex, as `ferrosim pki show` prints it) of a certificate
    /// no longer at hand; needs --issuer.
    #[arg(long, value_name = "HEX", conflicts_with = "cert", requires = "issuer", value_parser = parse_hex_serial)]
    serial: Option<Serial>,
    /// Which CA revokes the --serial: `ci` or `eum`.
    #[arg(long, value_name = "ci|eum", value_parser = parse_issuer)]
    issuer: Option<CrlIssuer>,
    /// CRLReason (RFC 5280): keyCompromise, cACompromise, affiliationChanged,
    /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, ...
    #[arg(long, value_name = "REASON", value_parser = parse_reason)]
    reason: Option<RevocationReason>,
    /// Revocation time instead of now (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    at: Option<SystemTime>,
    /// Only record the revocation; do not issue the issuer's CRL now.
    #[arg(long)]
    no_crl: bool,
    /// Validity of the CRL issued, in days (its nextUpdate).
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    next_update_days: u32,
}

/// Arguments of `ferrosim pki crl`.
#[derive(Debug, Args)]
pub struct CrlArgs {
    /// The hierarchy directory written by `ferrosim pki init`.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Issue only this CA's CRL (`ci` or `eum`); both when absent.
    #[arg(long, value_name = "ci|eum", value_parser = parse_issuer)]
    issuer: Option<CrlIssuer>,
    /// Validity of the CRL, in days (its nextUpdate).
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    next_update_days: u32,
    /// Split the CRL into this many partial CRLs (SGP.22 partial CRLs:
    /// `<name>.part<N>.crl`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    parts: u32,
    /// Output file (DER) instead of DIR/CRL/ci.crl or DIR/CRL/eum.crl; needs --issuer.
    #[arg(long, value_name = "FILE", requires = "issuer")]
    out: Option<PathBuf>,
}

/// Runs `ferrosim pki revoke`.
pub fn run_revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let at = args.at.unwrap_or_else(SystemTime::now);
    let (ca, entry) = match (&args.cert, args.serial) {
        (Some(path), _) => {
            let cert = load::certificate_from_file(path)
                .with_context(|| format!("reading certificate {}", path.display()))?;
            let Some(role) = cert.role() else {
                bail!(
                    "{}: the certificate carries no GSMA RSP role policy",
                    path.display()
                );
            };
            let Some(issuer) = CrlIssuer::for_role(role) else {
                bail!(
                    "{}: a CI certificate is not revoked by a CRL; remove it from the trust stores",
                    path.display()
                );
            };
            let ca = authority(&args.dir, issuer)?;
            let entry = ca
                .revoke(&cert, at, args.reason)
                .with_context(|| format!("revoking {}", path.display()))?;
            (ca, entry)
        }
        (None, Some(Serial(serial))) => {
            let issuer = args.issuer.context("--serial needs --issuer ci|eum")?;
            let ca = authority(&args.dir, issuer)?;
            let entry = ca.revoke_serial(serial, at, args.reason)?;
            (ca, entry)
        }
        (None, None) => bail!("give the certificate to revoke, or --serial and --issuer"),
    };
    println!(
        "revoked serial {} by the {} at {}{}",
        hex_upper(&entry.serial),
        ca.issuer(),
        format_time(entry.revoked_at),
        entry.reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    if !args.no_crl {
        let issued = issue(&ca, args.next_update_days, 1, None)?;
        print_issued(&ca, &issued);
    }
    Ok(())
}

/// Runs `ferrosim pki crl`.
pub fn run_crl(args: CrlArgs) -> anyhow::Result<()> {
    let issuers = match args.issuer {
        Some(one) => vec![one],
        None => vec![CrlIssuer::Ci, CrlIssuer::Eum],
    };
    for issuer in issuers {
        let ca = authority(&args.dir, issuer)?;
        let issued = issue(&ca, args.next_update_days, args.parts, args.out.as_deref())?;
        print_issued(&ca, &issued);
    }
    Ok(())
}

fn authority(dir: &Path, issuer: CrlIssuer) -> anyhow::Result<CrlAuthority> {
    CrlAuthority::load(dir, issuer).with_context(|| {
        format!(
            "reading the {issuer} of the hierarchy in {} (made by `ferrosim pki init`)",
            dir.display()
        )
    })
}

fn issue(
    ca: &CrlAuthority,
    days: u32,
    parts: u32,
    out: Option<&Path>,
) -> anyhow::Result<IssuedCrls> {
    let now = SystemTime::now();
    let next_update = now + Duration::from_secs(86_400) * days;
    ca.issue(now, next_update, parts, out).with_context(|| {
        let hint = if ca.issuer() == CrlIssuer::Eum {
            " (an EUM made before CRL support has no cRLSign: run `ferrosim pki init --force` again)"
        } else {
            ""
        };
        format!("issuing the {} CRL{hint}", ca.issuer())
    })
}

fn print_issued(ca: &CrlAuthority, issued: &IssuedCrls) {
    for (crl, file) in issued.crls.iter().zip(&issued.files) {
        let part = crl
            .part()
            .map(|p| format!(", part {} of {}", p.number, p.total))
            .unwrap_or_default();
        println!(
            "{} CRL {}{part}: {} revoked, next update {} -> {}",
            ca.issuer(),
            crl.number(),
            crl.len(),
            format_time(crl.next_update()),
            file.display()
        );
    }
}

/// What `ferrosim pki verify` was asked about revocation.
#[derive(Debug, Args)]
pub struct RevocationArgs {
    /// A CRL file (PEM or DER; a PEM file may hold several CRLs, such as the
    /// parts of a partial CRL). May be repeated. Turns revocation checking on.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
    /// Fetch the CRLs named in the certificates' cRLDistributionPoints over
    /// HTTP. Turns revocation checking on.
    #[arg(long)]
    fetch_crls: bool,
    /// A stale, incomplete or unobtainable CRL: `refuse` the certificate or
    /// accept it with a `warn`ing.
    #[arg(long, value_name = "refuse|warn", default_value = "refuse", value_parser = parse_stale)]
    stale: StalePolicy,
}

impl RevocationArgs {
    /// Whether revocation is to be checked.
    pub fn enabled(&self) -> bool {
        !self.crls.is_empty() || self.fetch_crls
    }

    /// Turns revocation on in `trust` and loads (or fetches) the CRLs for
    /// `certs` (the certificate verified and its EUM). Returns the CRL files
    /// whose issuer is not a trusted CI: they count once a certificate of
    /// their issuer verifies (see [`RevocationArgs::warn_unused`]).
    pub fn prepare(
        &self,
        trust: &mut TrustStore,
        certs: &[&RspCertificate],
        now: SystemTime,
    ) -> anyhow::Result<Vec<(PathBuf, KeyId)>> {
        let mut awaiting = Vec::new();
        if !self.enabled() {
            return Ok(awaiting);
        }
        let revocation = trust
            .enable_revocation(RevocationPolicy {
                on_stale: self.stale,
                fetch_distribution_points: self.fetch_crls,
            })
            .clone();
        for path in &self.crls {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading CRL {}", path.display()))?;
            let outcomes = trust
                .load_crls(&bytes, None)
                .with_context(|| format!("loading CRL {}", path.display()))?;
            for outcome in outcomes {
                if let LoadOutcome::AwaitingIssuer { issuer } = outcome {
                    awaiting.push((path.clone(), issuer));
                }
            }
        }
        if !self.fetch_crls {
            return Ok(awaiting);
        }
        for cert in certs {
            for url in cert.crl_distribution_points() {
                revocation
                    .add_url(url, cert.authority_key_id().cloned(), now)
                    .with_context(|| format!("CRL distribution point of {}", cert.subject()))?;
            }
        }
        let fetcher = CrlFetcher::new(trust.clone(), FetchOptions::default())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the HTTP client")?;
        for report in runtime.block_on(fetcher.fetch_due(now)) {
            match report.result {
                Ok(_) => println!("fetched CRL {}", report.url),
                Err(e) => eprintln!("warning: CRL {}: {e}", report.url),
            }
        }
        Ok(awaiting)
    }

    /// Warns about CRL files that were not used: no certificate of their
    /// issuer was verified (a CRL of another hierarchy, or of an EUM not
    /// involved).
    pub fn warn_unused(&self, trust: &TrustStore, awaiting: &[(PathBuf, KeyId)]) {
        let Some(revocation) = trust.revocation() else {
            return;
        };
        let set = revocation.crl_set();
        for (path, issuer) in awaiting {
            if set.has_unverified(issuer) {
                eprintln!(
                    "warning: CRL {} not used: its issuer (key id {issuer}) is not a trusted CI \
                     or the EUM of the certificate verified",
                    path.display()
                );
            }
        }
    }

    /// Prints what revocation checking found for `cert` (as `role`, issued by `issuer`).
    pub fn report(
        &self,
        trust: &TrustStore,
        cert: &RspCertificate,
        role: CertRole,
        issuer: &RspCertificate,
        now: SystemTime,
    ) {
        let Some(revocation) = trust.revocation() else {
            println!("  {role} revocation: not checked (no --crl, no --fetch-crls)");
            return;
        };
        let text = match revocation.status(cert, issuer, now) {
            CrlStatus::Good {
                number,
                next_update,
            } => format!(
                "not revoked (CRL {number} of the {}, next update {})",
                issuer_name(issuer),
                format_time(next_update)
            ),
            CrlStatus::Revoked { entry, number } => format!(
                "REVOKED at {} (CRL {number})",
                format_time(entry.revoked_at)
            ),
            CrlStatus::Stale {
                number,
                next_update,
            } => format!(
                "unknown, accepted with a warning: CRL {number} is stale since {}",
                format_time(next_update)
            ),
            CrlStatus::Incomplete { missing_parts } => format!(
                "unknown, accepted with a warning: the partial CRL lacks parts {missing_parts:?}"
            ),
            CrlStatus::NoCrl => format!(
                "not checked: no CRL of the {} was given or fetched",
                issuer_name(issuer)
            ),
        };
        println!("  {role} revocation: {text}");
    }
}

/// Prints warnings of certificates accepted with an unknown revocation status.
pub fn print_warnings(warnings: &[RevocationWarning]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn issuer_name(issuer: &RspCertificate) -> String {
    match issuer.role() {
        Some(role) => role.to_string(),
        None => "issuer".into(),
    }
}

/// Prints a CRL file for `ferrosim pki show`.
pub fn show_crls(crls: &[Crl]) {
    for (i, crl) in crls.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("CRL issuer:       {}", crl.issuer());
        println!("authority key id: {}", crl.authority_key_id());
        println!("CRL number:       {}", crl.number());
        if let Some(part) = crl.part() {
            println!("partial CRL:      part {} of {}", part.number, part.total);
        }
        println!("this update:      {}", format_time(crl.this_update()));
        println!("next update:      {}", format_time(crl.next_update()));
        println!("revoked:          {}", crl.len());
        for entry in crl.entries() {
            println!(
                "  {}  {}{}",
                hex_upper(&entry.serial),
                format_time(entry.revoked_at),
                entry.reason.map(|r| format!("  {r}")).unwrap_or_default()
            );
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    crate::pki_cmd::hex_upper(bytes)
}

/// A certificate serial number given on the command line.
#[derive(Debug, Clone)]
struct Serial(Vec<u8>);

fn parse_hex_serial(s: &str) -> Result<Serial, String> {
    parse_serial(s).map(Serial)
}

fn parse_issuer(s: &str) -> Result<CrlIssuer, String> {
    CrlIssuer::parse(s).ok_or_else(|| format!("{s:?}: expected ci or eum"))
}

fn parse_reason(s: &str) -> Result<RevocationReason, String> {
    RevocationReason::parse(s).ok_or_else(|| {
        let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
        format!("{s:?}: expected one of {}", names.join(", "))
    })
}

fn parse_stale(s: &str) -> Result<StalePolicy, String> {
    StalePolicy::parse(s).ok_or_else(|| format!("{s:?}: expected refuse or warn"))
}

fn parse_at(s: &str) -> Result<SystemTime, String> {
    parse_time(s).map_err(|e| e.to_string())
}
