//! `ferrosim eim …`: the eIM of an instance — associate devices, queue
//! eUICC packages (enable [--rollback], disable, delete, list-profiles,
//! set-fallback, unset-fallback, eCOs), download triggers and data requests,
//! show a device's queue, results and profiles, mark devices as emulated,
//! sanitize a device leaving the fleet, read its report and release it
//! (see [`crate::eim_sanitize_cmd`]), and write a device's first eIM
//! configuration (`bootstrap`).
//!
//! The commands open the instance's database and eIM key directly (like
//! `ferrosim order`) and run the same operations as the REST API
//! (`ferrosim_server::api::eim::ops`): every change is a compare-and-set
//! commit, so they are safe beside any number of running `serve` instances
//! on the same PostgreSQL (or the same SQLite file). Answers are printed as
//! the REST API's JSON. Also here: assembling the eIM for `serve`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_asn1::rasn::types::{BitString, Integer};
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_eim::{Eim, EimConfig, EimId, Iccid, Timestamp};
use ferrosim_server::api::eim::ops;
use ferrosim_server::api::eim::{
    AssociateRequest, DataItemName, DeviceListQuery, EimConfigurationJson, QueueRequest, SgpVersion,
};
use ferrosim_server::bootstrap::PkiPaths;
use ferrosim_server::eim_identity::{
    EimIdentity, EimPaths, EimPkcs11, ensure_eim_identity, load_eim_identity,
};
use ferrosim_store::SqlStore;
use serde::Serialize;

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::id_args;
use crate::instance::{Access, Instance, open_existing};

/// `ferrosim eim …`
#[derive(Debug, Args)]
pub struct EimArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: EimCommand,
}

#[derive(Debug, Subcommand)]
enum EimCommand {
    /// Associate a device: verify its eUICC certificate chain and keep the
    /// counter value and association token of this eIM in its eUICC.
    Associate {
        /// EID (32 digits).
        #[arg(long, value_parser = id_args::eid)]
        eid: ferrosim_ids::Eid,
        /// CERT.EUICC.ECDSA (PEM or DER); default `<pki dir>/eUICC/<EID>.pem`.
        #[arg(long)]
        euicc_cert: Option<PathBuf>,
        /// CERT.EUM.ECDSA (PEM or DER); default `<pki dir>/EUM/eum.pem`.
        #[arg(long)]
        eum_cert: Option<PathBuf>,
        /// This eIM's counter value in the eUICC.
        #[arg(long, default_value_t = 0)]
        counter: u32,
        /// The association token in the eUICC.
        #[arg(long)]
        association_token: Option<i64>,
        /// The eUICC's SGP.32 version: v1.2 or v1.0.
        #[arg(long, default_value = "v1.2")]
        euicc_version: String,
        /// The IPA emulates the IoT functions on a consumer eUICC (unsigned results).
        #[arg(long)]
        emulated: bool,
    },
    /// List associated devices.
    Devices {
        /// Start after this EID.
        #[arg(long, value_parser = id_args::eid)]
        after: Option<ferrosim_ids::Eid>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show a device: association, queue, profiles, last poll.
    Show(Eid),
    /// Show a device's open queue.
    Queue(Eid),
    /// Show a device's stored results (verified or unsigned).
    Results(Eid),
    /// Show a device's profiles as last reported.
    Profiles(Eid),
    /// Queue a PSMO enable (with --rollback the IPA may roll back).
    Enable {
        #[command(flatten)]
        target: Profile,
        /// Grant ProfileRollback.
        #[arg(long)]
        rollback: bool,
    },
    /// Queue a PSMO disable.
    Disable(Profile),
    /// Queue a PSMO delete.
    Delete(Profile),
    /// Queue a PSMO listProfileInfo.
    ListProfiles(Eid),
    /// Queue a PSMO setFallbackAttribute.
    SetFallback(Profile),
    /// Queue a PSMO unsetFallbackAttribute.
    UnsetFallback(Eid),
    /// Queue a profile download trigger with an activation code.
    Download {
        #[command(flatten)]
        device: Eid,
        /// `1$<SM-DP+ address>$<matching id>`.
        #[arg(long)]
        activation_code: String,
    },
    /// Queue an eIM Configuration Operation.
    Eco {
        #[command(flatten)]
        device: Eid,
        #[command(subcommand)]
        operation: EcoCommand,
    },
    /// Queue a request for eUICC data (notifications, package-results,
    /// euicc-info1, euicc-info2, certificates, ...).
    DataRequest {
        #[command(flatten)]
        device: Eid,
        /// Items, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        item: Vec<String>,
    },
    /// Withdraw a queued item that was not delivered yet.
    Withdraw {
        #[command(flatten)]
        device: Eid,
        /// The item id.
        #[arg(long)]
        item: u64,
    },
    /// Mark a device as emulating the IoT functions on a consumer eUICC
    /// (its results are accepted unsigned and shown as unsigned), or unmark it.
    Emulated {
        #[command(flatten)]
        device: Eid,
        /// `on` or `off`.
        #[arg(long, value_parser = ["on", "off"])]
        set: String,
    },
    /// Sanitize a device leaving the fleet or changing hands: withdraw what
    /// was not delivered, disable and delete every profile the eIM knows of
    /// in one signed package whose signed result also lists what is left, and
    /// list the eIMs the eUICC knows. Prints the report.
    Sanitize {
        #[command(flatten)]
        device: Eid,
        /// Keep provisioning profiles (class 1).
        #[arg(long)]
        keep_provisioning_profiles: bool,
        /// Print the REST API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The report of a device's last sanitization: what was wiped and kept,
    /// read from the eUICC's signed results.
    SanitizeReport {
        #[command(flatten)]
        device: Eid,
        /// Print the REST API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Release a device whose sanitization is clean: queue the signed
    /// deleteEim of this eIM; once the eUICC confirms, the device can be
    /// associated again.
    Release {
        #[command(flatten)]
        device: Eid,
        /// Print the REST API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Generate the eIM's key pair inside the `[pkcs11]` token under the
    /// label `[eim] pkcs11_label` (P-256, private half sensitive and never
    /// extractable). Run it before the first `serve`, which then issues the
    /// eIM's certificate for that key; refused when the label is taken or
    /// the eIM already has a certificate.
    KeyGenerate,
    /// Write the AddInitialEim request (DER) that installs this eIM as a
    /// device's first eIM: its id, FQDN, counter value, association token
    /// and public key.
    Bootstrap {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// The counter value the eUICC starts from.
        #[arg(long, default_value_t = 0)]
        counter: u32,
        /// An association token.
        #[arg(long)]
        association_token: Option<i64>,
    },
}

#[derive(Debug, Args)]
struct Eid {
    /// EID (32 digits).
    #[arg(long, value_parser = id_args::eid)]
    eid: ferrosim_ids::Eid,
}

#[derive(Debug, Args)]
struct Profile {
    /// EID (32 digits).
    #[arg(long, value_parser = id_args::eid)]
    eid: ferrosim_ids::Eid,
    /// ICCID of the profile.
    #[arg(long, value_parser = id_args::iccid)]
    iccid: Iccid,
}

#[derive(Debug, Subcommand)]
enum EcoCommand {
    /// Add an eIM.
    #[command(name = "add-eim")]
    Add(EcoEim),
    /// Update an eIM.
    #[command(name = "update-eim")]
    Update(EcoEim),
    /// Delete an eIM.
    #[command(name = "delete-eim")]
    Delete {
        /// The eIM's id.
        #[arg(long)]
        eim_id: String,
    },
    /// List the eIMs.
    #[command(name = "list-eim")]
    List,
}

#[derive(Debug, Args)]
struct EcoEim {
    /// The eIM's id.
    #[arg(long)]
    eim_id: String,
    /// Its FQDN.
    #[arg(long)]
    eim_fqdn: Option<String>,
    /// Its counter value.
    #[arg(long)]
    counter: Option<u32>,
    /// Its association token.
    #[arg(long)]
    association_token: Option<i64>,
    /// Its certificate (PEM or DER).
    #[arg(long)]
    eim_certificate: Option<PathBuf>,
}

/// Runs `ferrosim eim`.
pub fn run(args: EimArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    if matches!(args.command, EimCommand::KeyGenerate) {
        return key_generate(&cfg);
    }
    block_on(async move {
        let inst = open_existing(&cfg).await?;
        let audited = audit_of(&args.command);
        let result = command(&cfg, &inst, args.command).await;
        if let (Ok(()), Some((action, subject))) = (&result, audited) {
            crate::audit_cmd::record(&inst.store, &action, &subject, serde_json::Value::Null).await;
        }
        inst.store.close().await;
        result
    })
}

/// The audit action (`eim.<command>`) and subject (the EID) of a command
/// that changes something; `None` for the ones that only read.
fn audit_of(command: &EimCommand) -> Option<(String, String)> {
    let text = format!("{command:?}");
    let name = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned();
    if matches!(
        name.as_str(),
        "Devices" | "Show" | "Queue" | "Results" | "Profiles" | "Bootstrap" | "SanitizeReport"
    ) {
        return None;
    }
    // The first 32-digit run is the device's EID.
    let eid = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 32)
        .unwrap_or_default()
        .to_owned();
    Some((format!("eim.{name}"), eid))
}

fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn api(e: ferrosim_server::api::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message())
}

async fn command(cfg: &InstanceConfig, inst: &Instance, command: EimCommand) -> anyhow::Result<()> {
    let (eim, identity) = open_eim(cfg, inst, Access::Existing)?;
    let now = Timestamp::now();
    let queue = |eid: ferrosim_ids::Eid, request: QueueRequest| enqueue(&eim, eid, request);
    match command {
        EimCommand::Associate {
            eid,
            euicc_cert,
            eum_cert,
            counter,
            association_token,
            euicc_version,
            emulated,
        } => {
            let euicc_cert = euicc_cert
                .unwrap_or_else(|| cfg.pki_dir().join("eUICC").join(format!("{eid}.pem")));
            let eum_cert = eum_cert.unwrap_or_else(|| cfg.pki_dir().join("EUM").join("eum.pem"));
            let euicc_version = match euicc_version.as_str() {
                "v1.2" => SgpVersion::V1_2,
                "v1.0" => SgpVersion::V1_0,
                other => bail!("--euicc-version is v1.2 or v1.0, not `{other}`"),
            };
            let request = AssociateRequest {
                eid,
                eum_certificate: cert_text(&eum_cert)?,
                euicc_certificate: cert_text(&euicc_cert)?,
                counter,
                association_token,
                euicc_version,
                emulated,
            };
            print(&ops::associate(&eim, request, now).await.map_err(api)?)
        }
        EimCommand::Devices { after, limit } => {
            let query = DeviceListQuery {
                after,
                limit: Some(limit),
            };
            print(&ops::list_devices(&eim, &query).await.map_err(api)?)
        }
        EimCommand::Show(d) => print(&ops::device(&eim, &d.eid).await.map_err(api)?),
        EimCommand::Queue(d) => print(&ops::device(&eim, &d.eid).await.map_err(api)?.queue),
        EimCommand::Results(d) => print(&ops::results(&eim, &d.eid).await.map_err(api)?),
        EimCommand::Profiles(d) => print(&ops::device(&eim, &d.eid).await.map_err(api)?.profiles),
        EimCommand::Enable { target, rollback } => {
            queue(
                target.eid,
                QueueRequest::Enable {
                    iccid: target.iccid,
                    rollback,
                },
            )
            .await
        }
        EimCommand::Disable(p) => queue(p.eid, QueueRequest::Disable { iccid: p.iccid }).await,
        EimCommand::Delete(p) => queue(p.eid, QueueRequest::Delete { iccid: p.iccid }).await,
        EimCommand::ListProfiles(d) => queue(d.eid, QueueRequest::ListProfiles {}).await,
        EimCommand::SetFallback(p) => {
            queue(p.eid, QueueRequest::SetFallback { iccid: p.iccid }).await
        }
        EimCommand::UnsetFallback(d) => queue(d.eid, QueueRequest::UnsetFallback {}).await,
        EimCommand::Download {
            device,
            activation_code,
        } => queue(device.eid, QueueRequest::Download { activation_code }).await,
        EimCommand::Eco { device, operation } => {
            let request = match operation {
                EcoCommand::Add(e) => QueueRequest::AddEim { eim: eco_eim(e)? },
                EcoCommand::Update(e) => QueueRequest::UpdateEim { eim: eco_eim(e)? },
                EcoCommand::Delete { eim_id } => QueueRequest::DeleteEim { eim_id },
                EcoCommand::List => QueueRequest::ListEim {},
            };
            queue(device.eid, request).await
        }
        EimCommand::DataRequest { device, item } => {
            let items = item
                .iter()
                .map(|i| {
                    serde_json::from_value::<DataItemName>(serde_json::Value::String(
                        i.trim().to_owned(),
                    ))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "unknown data item `{i}` (notifications, package-results, \
                             default-smdp-address, root-smds-address, euicc-info1, euicc-info2, \
                             association-token, certificates, ipa-capabilities, device-info)"
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            queue(device.eid, QueueRequest::DataRequest { items }).await
        }
        EimCommand::Withdraw { device, item } => {
            ops::withdraw(&eim, &device.eid, item).await.map_err(api)?;
            println!("item {item} withdrawn");
            Ok(())
        }
        EimCommand::Emulated { device, set } => {
            let view = ops::set_emulated(&eim, &device.eid, set == "on")
                .await
                .map_err(api)?;
            print(&view)
        }
        EimCommand::Sanitize {
            device,
            keep_provisioning_profiles,
            json,
        } => {
            let request = ferrosim_server::api::eim::SanitizeRequest {
                keep_provisioning_profiles,
            };
            let report = ops::sanitize(&eim, &device.eid, &request, &mut rand::rng(), now)
                .await
                .map_err(api)?;
            show_report(&report, json)
        }
        EimCommand::SanitizeReport { device, json } => {
            let report = ops::sanitize_report(&eim, &device.eid).await.map_err(api)?;
            show_report(&report, json)
        }
        EimCommand::Release { device, json } => {
            let report = ops::release(&eim, &device.eid, &mut rand::rng(), now)
                .await
                .map_err(api)?;
            show_report(&report, json)
        }
        EimCommand::KeyGenerate => key_generate(cfg),
        EimCommand::Bootstrap {
            out,
            counter,
            association_token,
        } => {
            let der = add_initial_eim(
                eim.config().eim_id.as_str(),
                &inst.smdp_address,
                &identity,
                counter,
                association_token,
            )?;
            std::fs::write(&out, &der).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote AddInitialEim for eIM {} ({} bytes) to {}",
                eim.config().eim_id,
                der.len(),
                out.display()
            );
            Ok(())
        }
    }
}

fn show_report(
    report: &ferrosim_server::api::eim::SanitizeReportView,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print(report);
    }
    print!("{}", crate::eim_sanitize_cmd::report_text(report));
    Ok(())
}

async fn enqueue(
    eim: &Eim<SqlStore>,
    eid: ferrosim_ids::Eid,
    request: QueueRequest,
) -> anyhow::Result<()> {
    let queued = ops::enqueue(eim, &eid, &request, &mut rand::rng(), Timestamp::now())
        .await
        .map_err(api)?;
    print(&queued)
}

fn cert_text(path: &PathBuf) -> anyhow::Result<String> {
    use base64::Engine;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN") => text.to_owned(),
        _ => base64::engine::general_purpose::STANDARD.encode(&bytes),
    })
}

fn eco_eim(e: EcoEim) -> anyhow::Result<EimConfigurationJson> {
    use base64::Engine;
    let eim_certificate = e
        .eim_certificate
        .map(|p| -> anyhow::Result<String> {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let der = match pem::parse(&bytes) {
                Ok(pem) => pem.into_contents(),
                Err(_) => bytes,
            };
            Ok(base64::engine::general_purpose::STANDARD.encode(der))
        })
        .transpose()?;
    Ok(EimConfigurationJson {
        eim_id: e.eim_id,
        eim_fqdn: e.eim_fqdn,
        counter_value: e.counter,
        association_token: e.association_token,
        eim_public_key: None,
        eim_certificate,
    })
}

/// The AddInitialEimRequest (BF57) installing this eIM in a device: eIM id,
/// FQDN (the instance's address), counter value, association token, the
/// eIM's public key, retrieval over HTTPS.
pub fn add_initial_eim(
    eim_id: &str,
    fqdn: &str,
    identity: &EimIdentity,
    counter: u32,
    association_token: Option<i64>,
) -> anyhow::Result<Vec<u8>> {
    ferrosim_eim::Counter::new(counter.into()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = decode_der(&identity.public_key_spki()).context("the eIM public key")?;
    // EimSupportedProtocol: eimRetrieveHttps (bit 0).
    let mut protocols = BitString::repeat(false, 1);
    protocols.set(0, true);
    let config = sgp32::EimConfigurationData::new(
        eim_id.to_owned(),
        Some(fqdn.to_owned()),
        None,
        Some(Integer::from(counter)),
        association_token.map(Integer::from),
        Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
            key,
        )),
        None,
        Some(sgp32::EimSupportedProtocol(protocols)),
        None,
        None,
        None,
    );
    let request = sgp32::AddInitialEimRequest::new(vec![config]);
    Ok(encode_der(&request)?)
}

/// The eIM id in effect.
pub fn eim_id(cfg: &InstanceConfig, smdp_address: &str) -> String {
    cfg.eim.eim_id.clone().unwrap_or_else(|| {
        let host = smdp_address
            .rsplit_once(':')
            .map_or(smdp_address, |(h, _)| h);
        format!("eim.{host}")
    })
}

/// The eIM's certificate and key files in effect.
pub fn eim_paths(cfg: &InstanceConfig) -> EimPaths {
    let default = EimPaths::in_dir(&cfg.pki_dir());
    EimPaths {
        certificate: cfg.eim.certificate.clone().unwrap_or(default.certificate),
        key: cfg.eim.key.clone().unwrap_or(default.key),
    }
}

/// `ferrosim eim key-generate`: the eIM's key pair, generated in the token.
fn key_generate(cfg: &InstanceConfig) -> anyhow::Result<()> {
    use ferrosim_crypto::pkcs11::Pkcs11Key;
    let Some(k) = eim_pkcs11(cfg)? else {
        bail!(
            "set [eim] pkcs11_label (and a [pkcs11] token) to generate the eIM key in a token; \
             without it `ferrosim serve` generates a key file on its first start"
        );
    };
    let paths = eim_paths(cfg);
    if paths.certificate.exists() {
        bail!(
            "the eIM already has a certificate ({}), for another key: a new key would not match it",
            paths.certificate.display()
        );
    }
    if Pkcs11Key::open(&k.module, &k.token, &k.pin, &k.label).is_ok() {
        bail!(
            "token {:?} already holds a key pair labelled {:?}: keys are never replaced; \
             choose another [eim] pkcs11_label, or delete the old key with the token's own tool",
            k.token,
            k.label
        );
    }
    let key = Pkcs11Key::generate(&k.module, &k.token, &k.pin, &k.label).with_context(|| {
        format!(
            "generating the eIM key {:?} in token {:?}",
            k.label, k.token
        )
    })?;
    let protection = key
        .protection()
        .with_context(|| format!("reading the attributes of {:?}", k.label))?;
    if !protection.sensitive || protection.extractable {
        bail!(
            "the token did not make the eIM key {:?} sensitive and non-extractable \
             (CKA_SENSITIVE {}, CKA_EXTRACTABLE {}): delete it with the token's own tool",
            k.label,
            protection.sensitive,
            protection.extractable
        );
    }
    let point: String = ferrosim_crypto::KeySource::public_key_sec1(&key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "eIM key {:?} generated in token {:?} (sensitive, not extractable)",
        k.label, k.token
    );
    println!("  public key: {point}");
    println!("next: `ferrosim serve` issues the eIM certificate for it on its first start");
    Ok(())
}

fn eim_pkcs11(cfg: &InstanceConfig) -> anyhow::Result<Option<EimPkcs11>> {
    let Some(label) = &cfg.eim.pkcs11_label else {
        return Ok(None);
    };
    let Some(p) = &cfg.pkcs11 else {
        bail!("eim.pkcs11_label is set but there is no [pkcs11] token configured");
    };
    let pin = std::env::var(&p.pin_env)
        .with_context(|| format!("the PKCS#11 PIN must be in {}", p.pin_env))?;
    Ok(Some(EimPkcs11 {
        module: p.module.clone(),
        token: p.token.clone(),
        pin: zeroize::Zeroizing::new(pin),
        label: label.clone(),
    }))
}

/// The eIM of an instance: its identity (generated on first start with
/// [`Access::Create`]) and the eIM over the instance's store.
pub fn open_eim(
    cfg: &InstanceConfig,
    inst: &Instance,
    access: Access,
) -> anyhow::Result<(Eim<SqlStore>, EimIdentity)> {
    let id = eim_id(cfg, &inst.smdp_address);
    let eim_id = EimId::new(&id).map_err(|e| anyhow::anyhow!("eim.eim_id: {e}"))?;
    let paths = eim_paths(cfg);
    let pkcs11 = eim_pkcs11(cfg)?;
    if access == Access::Create {
        ensure_eim_identity(&paths, &id, &inst.smdp_address, pkcs11.as_ref())?;
    } else if !paths.certificate.exists() {
        bail!(
            "the instance has no eIM identity yet ({} is missing): `ferrosim serve` creates it on its first start",
            paths.certificate.display()
        );
    }
    let identity = load_eim_identity(&paths, pkcs11.as_ref())
        .with_context(|| format!("loading the eIM key ({})", paths.key.display()))?;
    let config = EimConfig {
        eim_id,
        key: identity.key.clone(),
        trust: inst.smdp.config().trust.clone(),
    };
    Ok((Eim::new(inst.store.clone(), config), identity))
}

/// What `serve` adds for the eIM.
pub struct EimServing {
    /// ESipa (both bindings), the eIM REST API and `/openapi.json`.
    pub routes: axum::Router,
    /// ESipa over plain HTTP, when configured for a lab.
    pub lab: Option<ferrosim_server::esipa::LabHttp>,
    /// The eIM (for fleet control), when served.
    pub eim: Option<Eim<SqlStore>>,
}

/// Assembles the eIM of `serve` (creating its identity on first start).
pub fn serve_routes(cfg: &InstanceConfig, inst: &Instance) -> anyhow::Result<EimServing> {
    use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
    use ferrosim_server::{api, esipa, relay::SmdpRelay};
    if !cfg.eim.enabled {
        return Ok(EimServing {
            routes: axum::Router::new(),
            lab: None,
            eim: None,
        });
    }
    let (eim, _identity) = open_eim(cfg, inst, Access::Create)?;
    let remote = if cfg.eim.relay_remote {
        let trust = if !cfg.eim.relay_trust.is_empty() {
            cfg.eim.relay_trust.clone()
        } else if !cfg.pki.ci_certs.is_empty() {
            cfg.pki.ci_certs.clone()
        } else {
            PkiPaths::in_dir(&cfg.pki_dir()).ci_certs
        };
        let trust = TlsTrust::roots_from_files(&trust).context("eim.relay_trust")?;
        Some(
            HttpsEs9Client::new(&HttpsOptions::new(trust))
                .context("the eIM relay's HTTPS client")?,
        )
    } else {
        None
    };
    let relay = SmdpRelay::new(Some(inst.smdp.clone()), remote);
    let esipa_routes = esipa::routes(eim.clone(), relay);
    let lab = match cfg.eim.lab_plain_http_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("eim.lab_plain_http_listen: cannot listen on {addr}"))?;
            let relay = SmdpRelay::new(Some(inst.smdp.clone()), None);
            // Announced by `serve` after its listening line, which stays
            // the first line of its output.
            Some(esipa::LabHttp::start(
                listener,
                esipa::routes(eim.clone(), relay),
            )?)
        }
        None => None,
    };
    tracing::info!(eim_id = %eim.config().eim_id, "eIM: ESipa at /gsma/rsp2/asn1 and /gsma/rsp2/esipa/*, REST at /api/v1/eim");
    let routes = esipa_routes
        .merge(api::eim::routes(eim.clone(), inst.store.clone()))
        .merge(api::openapi_route());
    Ok(EimServing {
        routes,
        lab,
        eim: Some(eim),
    })
}
