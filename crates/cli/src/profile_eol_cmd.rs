//! `ferrosim profile …`: a profile's end of life. `revoke` ends the
//! profile's order, records the ICCID's end-of-life state under the
//! operator's reuse policy and, when the profile may be on a device the
//! instance's eIM manages, queues the signed disable + delete package for it;
//! the revocation completes when the device's delete notification reaches
//! the SM-DP+. `show` and `list` report where each revoked ICCID is (settling
//! the ones whose delete notification has arrived); `reuse-policy` sets what
//! an operator allows for its revoked ICCIDs.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_eim::error::EimError;
use ferrosim_eim::package::{Operation, PackageContent};
use ferrosim_saip::Iccid;
use ferrosim_smdp::end_of_life::{
    EndOfLifeState, ReusePolicy, Revocation, RevokeError, device_to_clean,
};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::{CatalogStore, EndOfLifeStore};
use ferrosim_smdp::time::Timestamp;
use serde_json::json;

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance::{self, Access};

/// `ferrosim profile …`
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// Revoke a profile: end its order, delete it from its device through the
    /// eIM, retire or quarantine its ICCID.
    Revoke {
        /// The profile's ICCID.
        #[arg(value_parser = crate::id_args::iccid)]
        iccid: Iccid,
        /// The operator owning it.
        #[arg(long)]
        operator: String,
        /// Why (kept with the revocation and in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
        /// `retire` or `quarantine` (default: the operator's reuse policy).
        #[arg(long)]
        policy: Option<String>,
        /// Quarantine period in days (with `--policy quarantine`).
        #[arg(long, default_value_t = 0)]
        quarantine_days: i64,
    },
    /// Where a revoked profile's ICCID is.
    Show {
        /// The profile's ICCID.
        #[arg(value_parser = crate::id_args::iccid)]
        iccid: Iccid,
    },
    /// Revoked profiles, oldest first.
    List {
        /// Only this state: awaiting-device-delete, retired or quarantined.
        #[arg(long)]
        state: Option<String>,
        /// Only this operator's.
        #[arg(long)]
        operator: Option<String>,
    },
    /// Show or set an operator's reuse policy for the ICCIDs of its revoked profiles.
    ReusePolicy {
        /// The operator.
        #[arg(long)]
        operator: String,
        /// `retire` or `quarantine` (omitted: show the current policy).
        policy: Option<String>,
        /// Quarantine period in days.
        #[arg(long, default_value_t = 0)]
        quarantine_days: i64,
    },
}

fn policy_of(name: &str, days: i64) -> anyhow::Result<ReusePolicy> {
    let secs = days
        .checked_mul(86_400)
        .with_context(|| format!("--quarantine-days {days} is out of range"))?;
    if name == "retire" && days != 0 {
        bail!("--quarantine-days goes with --policy quarantine");
    }
    Ok(ReusePolicy::parse(name, secs)?)
}

/// The JSON view of a revocation.
pub fn revocation_json(r: &Revocation, now: Timestamp) -> serde_json::Value {
    json!({
        "iccid": r.iccid.as_str(),
        "operator": r.operator.as_str(),
        "eid": r.eid.as_ref().map(|e| e.to_string()),
        "previous_state": r.previous_state.as_str(),
        "state": r.state.as_str(),
        "policy": r.policy.name(),
        "quarantine_seconds": r.policy.quarantine_seconds(),
        "reason": r.reason,
        "revoked_at_ms": r.revoked_at.millis(),
        "deleted_on_device_at_ms": r.deleted_on_device_at.map(Timestamp::millis),
        "reusable_from_ms": r.reusable_from().map(Timestamp::millis),
        "reusable_now": r.reusable_at(now),
    })
}

/// Runs `ferrosim profile …`.
pub fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let inst = instance::open_existing(&cfg).await?;
        let store = &inst.store;
        let now = Timestamp::now();
        let operator_of =
            |id: &str| -> anyhow::Result<OperatorId> { OperatorId::new(id).context("--operator") };
        match args.command {
            ProfileCommand::Revoke {
                iccid,
                operator,
                reason,
                policy,
                quarantine_days,
            } => {
                let op = operator_of(&operator)?;
                if store.operator(&op).await?.is_none() {
                    bail!("unknown operator {op}");
                }
                let policy = match policy {
                    Some(name) => policy_of(&name, quarantine_days)?,
                    None if quarantine_days != 0 => {
                        bail!("--quarantine-days goes with --policy quarantine")
                    }
                    None => store.reuse_policy(&op).await?,
                };
                let existing = store.revocation(&iccid).await?;
                let revocation = match inst
                    .smdp
                    .revoke_profile(&op, &iccid, existing.as_ref(), policy, &reason, now)
                    .await
                {
                    Ok(r) => r,
                    Err(RevokeError::Refused(e)) => bail!("{}: {e}", iccid.as_str()),
                    Err(RevokeError::Store(e)) => return Err(e.into()),
                };
                store.insert_revocation(&revocation).await?;
                crate::audit_cmd::record(
                    store,
                    "profile.revoke",
                    iccid.as_str(),
                    json!({ "operator": operator, "policy": policy.name(),
                            "quarantine_seconds": policy.quarantine_seconds(),
                            "state": revocation.state.as_str(), "reason": reason }),
                )
                .await;
                let mut out = revocation_json(&revocation, now);
                if let Some(eid) = device_to_clean(&revocation) {
                    out["device_delete"] = queue_delete(&cfg, &inst, eid, &iccid).await?;
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            ProfileCommand::Show { iccid } => {
                store.settle_device_deletes().await?;
                let Some(r) = store.revocation(&iccid).await? else {
                    bail!("{} is not revoked", iccid.as_str());
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&revocation_json(&r, now))?
                );
            }
            ProfileCommand::List { state, operator } => {
                let state = state
                    .map(|s| {
                        EndOfLifeState::parse(&s).with_context(|| {
                            format!(
                                "--state is awaiting-device-delete, retired or quarantined, not `{s}`"
                            )
                        })
                    })
                    .transpose()?;
                let op = operator.as_deref().map(operator_of).transpose()?;
                store.settle_device_deletes().await?;
                let list: Vec<_> = store
                    .revocations(state, op.as_ref())
                    .await?
                    .iter()
                    .map(|r| revocation_json(r, now))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            }
            ProfileCommand::ReusePolicy {
                operator,
                policy,
                quarantine_days,
            } => {
                let op = operator_of(&operator)?;
                if store.operator(&op).await?.is_none() {
                    bail!("unknown operator {op}");
                }
                if let Some(name) = policy {
                    let policy = policy_of(&name, quarantine_days)?;
                    store.set_reuse_policy(&op, policy).await?;
                    crate::audit_cmd::record(
                        store,
                        "profile.reuse_policy",
                        op.as_str(),
                        json!({ "policy": policy.name(), "quarantine_seconds": policy.quarantine_seconds() }),
                    )
                    .await;
                }
                let p = store.reuse_policy(&op).await?;
                println!(
                    "{}",
                    json!({ "operator": op.as_str(), "policy": p.name(),
                            "quarantine_seconds": p.quarantine_seconds(),
                            "quarantine_days": Duration::from_secs(u64::try_from(p.quarantine_seconds()).unwrap_or(0)).as_secs() / 86_400 })
                );
            }
        }
        Ok(())
    })
}

/// Queues the signed disable + delete package for the device, when the
/// instance's eIM manages it; says so otherwise (the delete then has to come
/// from the device's own LPA, and the revocation waits for its notification).
async fn queue_delete(
    cfg: &InstanceConfig,
    inst: &instance::Instance,
    eid: &ferrosim_pki::Eid,
    iccid: &Iccid,
) -> anyhow::Result<serde_json::Value> {
    let (eim, _) = crate::eim_cmd::open_eim(cfg, inst, Access::Existing)?;
    let content = PackageContent::Psmos(vec![
        Operation::Disable {
            iccid: iccid.clone(),
        },
        Operation::Delete {
            iccid: iccid.clone(),
        },
    ]);
    match eim
        .enqueue_package(eid, &content, &mut rand::rng(), Timestamp::now())
        .await
    {
        Ok(q) => Ok(json!({ "queued": true, "eid": eid.to_string(), "item_id": q.item_id })),
        Err(EimError::UnknownDevice(_)) => Ok(json!({
            "queued": false,
            "eid": eid.to_string(),
            "note": "the device is not associated with this eIM: delete the profile from the device's LPA; the revocation completes when its delete notification arrives",
        })),
        Err(e) => Err(anyhow::anyhow!("queueing the delete for {eid}: {e}")),
    }
}
