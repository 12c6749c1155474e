//! `ferrosim profile-type`, `ferrosim profiles`: what an operator sells,
//! imported into the SM-DP+'s database.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileTypeImport};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::{ProfileFilter, ProfileStore};
use ferrosim_smdp::time::Timestamp;

use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{Access, open_store};

/// `ferrosim profile-type …`
#[derive(Debug, Args)]
pub struct ProfileTypeArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: ProfileTypeCommand,
}

#[derive(Debug, Subcommand)]
enum ProfileTypeCommand {
    /// Import an unprotected profile package (SAIP DER) as a profile type.
    Import {
        /// Owning operator.
        #[arg(long)]
        operator: String,
        /// Profile type name (ES2+ profileType).
        #[arg(long)]
        name: String,
        /// The package file.
        #[arg(long)]
        package: PathBuf,
        /// Service provider name shown to the user.
        #[arg(long)]
        service_provider: Option<String>,
        /// Profile name shown to the user.
        #[arg(long)]
        profile_name: Option<String>,
        /// Profile class: test, provisioning or operational.
        #[arg(long, default_value = "operational")]
        class: String,
        /// PPR1: the profile may not be disabled.
        #[arg(long)]
        ppr1: bool,
        /// PPR2: the profile may not be deleted.
        #[arg(long)]
        ppr2: bool,
        /// Profile owner MCC+MNC (5 or 6 digits); default from the package's IMSI.
        #[arg(long)]
        owner: Option<String>,
        /// The profile owner allows the SGP.32 fallback attribute on these
        /// profiles: their metadata carries `fallbackAllowed`, without
        /// which an IoT eUICC refuses to make one the fallback profile.
        #[arg(long)]
        fallback_allowed: bool,
        /// Add a new version to an existing profile type of this name:
        /// orders made from now on use it, earlier orders keep the version
        /// they were made with (every version is kept).
        #[arg(long)]
        replace: bool,
    },
    /// List profile types with their profiles per state.
    List {
        /// Only this operator's.
        #[arg(long)]
        operator: Option<String>,
    },
    /// Show a profile type: metadata, package size, profiles per state.
    Show {
        /// Owning operator.
        #[arg(long)]
        operator: String,
        /// Profile type name.
        #[arg(long)]
        name: String,
    },
    /// Remove a profile type that has no profiles.
    Remove {
        /// Owning operator.
        #[arg(long)]
        operator: String,
        /// Profile type name.
        #[arg(long)]
        name: String,
    },
}

/// `ferrosim profiles …`
#[derive(Debug, Args)]
pub struct ProfilesArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: ProfilesCommand,
}

#[derive(Debug, Subcommand)]
enum ProfilesCommand {
    /// Import personalisation data from an operator batch file (CSV).
    Import {
        /// Owning operator.
        #[arg(long)]
        operator: String,
        /// Profile type.
        #[arg(long = "type")]
        profile_type: String,
        /// The CSV file (iccid,imsi,ki,opc[,pin1,puk1,pin2,puk2,adm1]).
        #[arg(long)]
        batch: PathBuf,
    },
    /// Generate profiles with consecutive ICCIDs/IMSIs and random K/OPc.
    Generate {
        /// Owning operator.
        #[arg(long)]
        operator: String,
        /// Profile type.
        #[arg(long = "type")]
        profile_type: String,
        /// How many.
        #[arg(long)]
        count: u64,
        /// First ICCID (with its check digit).
        #[arg(long)]
        first_iccid: String,
        /// First IMSI (digits, or MCC-MNC-MSIN).
        #[arg(long)]
        first_imsi: String,
    },
    /// List profiles and their order state.
    List {
        /// Only this operator's.
        #[arg(long)]
        operator: Option<String>,
        /// Only this type.
        #[arg(long = "type")]
        profile_type: Option<String>,
        /// Only this state.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Count profiles per state.
    Stats {
        /// Only this operator's.
        #[arg(long)]
        operator: Option<String>,
    },
}

/// Runs `ferrosim profile-type`.
pub fn run_profile_type(args: ProfileTypeArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        match args.command {
            ProfileTypeCommand::Import {
                operator,
                name,
                package,
                service_provider,
                profile_name,
                class,
                ppr1,
                ppr2,
                owner,
                fallback_allowed,
                replace,
            } => {
                let bytes = std::fs::read(&package)
                    .with_context(|| format!("reading {}", package.display()))?;
                let import = ProfileTypeImport {
                    operator: OperatorId::new(operator).context("--operator")?,
                    name,
                    package: bytes,
                    service_provider_name: service_provider,
                    profile_name,
                    profile_class: class.parse::<ProfileClass>().context("--class")?,
                    policy_rules: PolicyRules {
                        disable_not_allowed: ppr1,
                        delete_not_allowed: ppr2,
                        ..PolicyRules::default()
                    },
                    owner_mcc_mnc: owner,
                    fallback_allowed,
                };
                let t = if replace {
                    inventory::replace_profile_type(&store, import, Timestamp::now()).await?
                } else {
                    inventory::import_profile_type(&store, import, Timestamp::now())
                        .await
                        .map_err(|e| match e {
                            inventory::InventoryError::ProfileTypeExists(_) => {
                                anyhow::anyhow!("{e}: add --replace")
                            }
                            other => other.into(),
                        })?
                };
                crate::audit_cmd::record(
                    &store,
                    if replace { "profile-type.replace" } else { "profile-type.import" },
                    &t.name,
                    serde_json::json!({ "operator": t.operator.as_str(), "bytes": t.package.len(), "version": t.version, "fallback_allowed": t.metadata.fallback_allowed }),
                )
                .await;
                println!(
                    "profile type {} version {} {} ({} bytes): \"{}\" by {}, class {:?}{}",
                    t.name,
                    t.version,
                    if t.version > 1 {
                        "imported; new orders use it, earlier orders keep their version"
                    } else {
                        "imported"
                    },
                    t.package.len(),
                    t.metadata.profile_name,
                    t.metadata.service_provider_name,
                    t.metadata.profile_class,
                    if t.metadata.fallback_allowed {
                        ", fallback allowed"
                    } else {
                        ""
                    }
                );
            }
            ProfileTypeCommand::List { operator } => {
                let op = operator
                    .map(OperatorId::new)
                    .transpose()
                    .context("--operator")?;
                let types = store.list_profile_types(op.as_ref()).await?;
                if types.is_empty() {
                    println!("no profile types (import one with `ferrosim profile-type import`)");
                }
                for t in types {
                    println!(
                        "{:<16} {:<24} {:>8} bytes  {}{}",
                        t.operator,
                        t.name,
                        t.package_len,
                        counts_line(&t.profiles),
                        if t.metadata.fallback_allowed {
                            "  fallback allowed"
                        } else {
                            ""
                        }
                    );
                }
            }
            ProfileTypeCommand::Show { operator, name } => {
                let op = OperatorId::new(operator).context("--operator")?;
                let Some(t) = store
                    .list_profile_types(Some(&op))
                    .await?
                    .into_iter()
                    .find(|t| t.name == name)
                else {
                    bail!(
                        "no profile type {name} of operator {op} (see `ferrosim profile-type list`)"
                    );
                };
                let m = &t.metadata;
                println!("operator:          {}", t.operator);
                println!("name:              {}", t.name);
                println!("package:           {} bytes", t.package_len);
                println!("imported:          {}", t.created_at.to_rfc3339());
                println!("service provider:  {}", m.service_provider_name);
                println!("profile name:      {}", m.profile_name);
                println!("class:             {:?}", m.profile_class);
                println!(
                    "policy rules:      {}",
                    match (
                        m.policy_rules.disable_not_allowed,
                        m.policy_rules.delete_not_allowed
                    ) {
                        (false, false) => "none",
                        (true, false) => "PPR1 (no disable)",
                        (false, true) => "PPR2 (no delete)",
                        (true, true) => "PPR1 (no disable), PPR2 (no delete)",
                    }
                );
                println!(
                    "owner MCC+MNC:     {}",
                    m.owner_mcc_mnc.as_deref().unwrap_or("-")
                );
                println!(
                    "fallback allowed:  {}",
                    if m.fallback_allowed {
                        "yes (SGP.32 fallbackAllowed in every download's metadata)"
                    } else {
                        "no"
                    }
                );
                println!("profiles:          {}", counts_line(&t.profiles));
                println!("version:           {} (new orders use it)", t.version);
                println!("versions:");
                for v in store.profile_type_versions(&op, &name).await? {
                    println!(
                        "  {:<3} imported {}  {} bytes  sha256 {}  orders {}",
                        v.version,
                        v.created_at.to_rfc3339(),
                        v.package_len,
                        v.package_sha256[..8]
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                        v.orders
                    );
                }
            }
            ProfileTypeCommand::Remove { operator, name } => {
                let op = OperatorId::new(operator).context("--operator")?;
                match store.remove_profile_type(&op, &name).await {
                    Ok(true) => {
                        crate::audit_cmd::record(
                            &store,
                            "profile-type.remove",
                            &name,
                            serde_json::json!({ "operator": op.as_str() }),
                        )
                        .await;
                        println!("profile type {name} of {op} removed");
                    }
                    Ok(false) => bail!("no profile type {name} of operator {op}"),
                    Err(ferrosim_smdp::store::StoreError::Conflict(why)) => {
                        bail!("profile type {name} not removed: {why}")
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        store.close().await;
        Ok(())
    })
}

/// Runs `ferrosim profiles`.
pub fn run_profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let store = open_store(&cfg, Access::Existing).await?;
        match args.command {
            ProfilesCommand::Import {
                operator,
                profile_type,
                batch,
            } => {
                let text = std::fs::read_to_string(&batch)
                    .with_context(|| format!("reading {}", batch.display()))?;
                let op = OperatorId::new(operator).context("--operator")?;
                let n = match inventory::import_batch(
                    &store,
                    &op,
                    &profile_type,
                    &text,
                    Timestamp::now(),
                )
                .await
                {
                    Ok(n) => n,
                    Err(e) => {
                        let iccids: Vec<Iccid> = ferrosim_saip::parse_batch(&text)
                            .map(|rows| rows.into_iter().map(|p| p.iccid).collect())
                            .unwrap_or_default();
                        return Err(name_taken_iccids(&store, e, &iccids).await);
                    }
                };
                crate::audit_cmd::record(
                    &store,
                    "profiles.import",
                    &profile_type,
                    serde_json::json!({ "operator": op.as_str(), "count": n }),
                )
                .await;
                println!("{n} profiles imported");
            }
            ProfilesCommand::Generate {
                operator,
                profile_type,
                count,
                first_iccid,
                first_imsi,
            } => {
                let op = OperatorId::new(operator).context("--operator")?;
                let iccid = Iccid::new(&first_iccid).context("--first-iccid")?;
                let imsi = parse_imsi(&first_imsi).context("--first-imsi")?;
                let range = inventory::ProfileRange {
                    count,
                    first_iccid: iccid.clone(),
                    first_imsi: imsi,
                };
                let n = match inventory::generate_profiles(
                    &store,
                    &op,
                    &profile_type,
                    &range,
                    &mut rand::rng(),
                    Timestamp::now(),
                )
                .await
                {
                    Ok(n) => n,
                    Err(e) => {
                        let iccids = iccid_range(&iccid, count);
                        return Err(name_taken_iccids(&store, e, &iccids).await);
                    }
                };
                crate::audit_cmd::record(
                    &store,
                    "profiles.generate",
                    &profile_type,
                    serde_json::json!({ "operator": op.as_str(), "count": n, "first_iccid": iccid.as_str() }),
                )
                .await;
                println!("{n} profiles generated");
            }
            ProfilesCommand::List {
                operator,
                profile_type,
                state,
                limit,
            } => {
                let filter = ProfileFilter {
                    operator: operator
                        .map(OperatorId::new)
                        .transpose()
                        .context("--operator")?,
                    profile_type,
                    state: state
                        .map(|s| {
                            ProfileState::parse(&s).with_context(|| {
                                let valid: Vec<&str> =
                                    ProfileState::ALL.iter().map(|st| st.as_str()).collect();
                                format!("--state `{s}`: expected one of {}", valid.join(", "))
                            })
                        })
                        .transpose()?,
                    limit,
                };
                for p in store.list_profiles(&filter).await? {
                    let order = p.order.as_ref();
                    println!(
                        "{}  {:<11} {:<12} {:<16} eid={} matching_id={}",
                        p.iccid,
                        p.state,
                        p.profile_type,
                        p.operator,
                        order
                            .and_then(|o| o.eid.as_ref())
                            .map_or("-".into(), |e| e.to_string()),
                        order
                            .and_then(|o| o.matching_id.as_ref())
                            .map_or("-".into(), |m| m.to_string()),
                    );
                }
            }
            ProfilesCommand::Stats { operator } => {
                let op = operator
                    .map(OperatorId::new)
                    .transpose()
                    .context("--operator")?;
                for (state, n) in store.count_profiles(op.as_ref()).await? {
                    println!("{state:<12} {n}");
                }
            }
        }
        store.close().await;
        Ok(())
    })
}

/// `available 3, installed 1` (or `no profiles`).
fn counts_line(counts: &[(ProfileState, u64)]) -> String {
    if counts.is_empty() {
        return "no profiles".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed import as an error for the user: a uniqueness conflict names the
/// ICCIDs that are already in the database (the database itself only says
/// which column).
async fn name_taken_iccids(
    store: &ferrosim_store::SqlStore,
    error: inventory::InventoryError,
    iccids: &[Iccid],
) -> anyhow::Error {
    use ferrosim_smdp::store::StoreError;
    match &error {
        // The store's own refusal of a revoked ICCID already names it and why.
        inventory::InventoryError::Store(StoreError::Conflict(why))
            if why.starts_with("ICCID ") =>
        {
            return anyhow::anyhow!("nothing imported: {why}");
        }
        inventory::InventoryError::Store(StoreError::Conflict(_)) => {}
        _ => return error.into(),
    }
    match store.existing_iccids(iccids).await {
        Ok(taken) if !taken.is_empty() => {
            let shown: Vec<String> = taken.iter().take(5).map(ToString::to_string).collect();
            let more = taken.len().saturating_sub(shown.len());
            anyhow::anyhow!(
                "nothing imported: ICCID {} already in the database{}",
                shown.join(", "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            )
        }
        _ => error.into(),
    }
}

/// The ICCIDs `profiles generate` makes: `count` consecutive bodies from
/// `first`'s, each with its Luhn digit (stops early where the digits run out).
fn iccid_range(first: &Iccid, count: u64) -> Vec<Iccid> {
    let body = &first.as_str()[..first.as_str().len() - 1];
    let Ok(start) = body.parse::<u128>() else {
        return Vec::new();
    };
    (0..u128::from(count))
        .map_while(|i| {
            let next = format!("{:0width$}", start.checked_add(i)?, width = body.len());
            (next.len() == body.len())
                .then(|| Iccid::from_body(&next).ok())
                .flatten()
        })
        .collect()
}

/// Parses `001010123456789` or `001-01-0123456789` (which also gives the MNC length).
pub fn parse_imsi(s: &str) -> anyhow::Result<Imsi> {
    let parts: Vec<&str> = s.split('-').collect();
    Ok(match parts.as_slice() {
        [mcc, mnc, msin] => Imsi::with_mnc_len(&format!("{mcc}{mnc}{msin}"), mnc.len())?,
        _ => Imsi::new(s)?,
    })
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(f)
}
