//! `ferrosim order …`: orders created through the same ES2+ logic operators
//! call over HTTPS, with the activation code printed and written as a QR PNG.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_asn1::json::es2::{
    CancelOrderRequest, ConfirmOrderRequest, DownloadOrderRequest, ReleaseProfileRequest,
    RequestHeader,
};
use ferrosim_ids::Eid;
use ferrosim_lpa::activation_code::{ActivationCode, SmdpAddress};
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::{MatchingId, OperatorId};
use ferrosim_smdp::store::{CatalogStore, ProfileStore};
use ferrosim_smdp::time::Timestamp;

use crate::admin_cmd::block_on;
use crate::config::{InstanceArgs, InstanceConfig};
use crate::instance;

/// `ferrosim order …`
#[derive(Debug, Args)]
pub struct OrderArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: OrderCommand,
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Order a profile (downloadOrder + confirmOrder) and print its activation code.
    Create {
        /// The operator placing the order.
        #[arg(long)]
        operator: String,
        /// Any available profile of this type...
        #[arg(long = "type", required_unless_present = "iccid")]
        profile_type: Option<String>,
        /// ...or this profile.
        #[arg(long, value_parser = crate::id_args::iccid)]
        iccid: Option<Iccid>,
        /// Link the order to this EID.
        #[arg(long, value_parser = crate::id_args::eid)]
        eid: Option<Eid>,
        /// Require this confirmation code from the end user.
        #[arg(long)]
        confirmation_code: Option<String>,
        /// Use this matching id instead of a generated one (10..=64 of 0-9, A-Z, '-').
        #[arg(long)]
        matching_id: Option<String>,
        /// Make the order with this version of the profile type (see
        /// `profile-type show`) instead of the latest.
        #[arg(long, value_name = "N")]
        type_version: Option<u32>,
        /// Confirm only; release later with `order release`.
        #[arg(long)]
        no_release: bool,
        /// Write the activation code as a QR code PNG here.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
    },
    /// Release a confirmed order for download.
    Release {
        /// The operator.
        #[arg(long)]
        operator: String,
        /// The profile.
        #[arg(value_parser = crate::id_args::iccid)]
        iccid: Iccid,
    },
    /// Cancel an order.
    Cancel {
        /// The operator.
        #[arg(long)]
        operator: String,
        /// The profile.
        #[arg(value_parser = crate::id_args::iccid)]
        iccid: Iccid,
        /// Withdraw the profile for good instead of returning it to the pool.
        #[arg(long)]
        unavailable: bool,
    },
    /// List orders: by state, operator, profile type, creation time; paged.
    List(crate::admin_lists_cmd::OrderListArgs),
    /// What happened to a profile's orders: ES2+ calls, download steps and
    /// their callbacks, device notifications; oldest first.
    History(crate::order_history_cmd::OrderHistoryArgs),
    /// Show a profile's order.
    Show {
        /// The profile.
        #[arg(value_parser = crate::id_args::iccid)]
        iccid: Iccid,
    },
}

/// Runs the command.
pub fn run(args: OrderArgs) -> anyhow::Result<()> {
    let cfg = InstanceConfig::resolve(&args.instance, None)?;
    block_on(async move {
        let inst = instance::open_existing(&cfg).await?;
        let address = inst.smdp_address.clone();
        let smdp = &inst.smdp;
        let now = Timestamp::now();
        let header = || RequestHeader {
            function_requester_identifier: String::new(),
            function_call_identifier: String::new(),
        };
        let store = inst.store.clone();
        let operator_of = |id: &str| {
            let id = OperatorId::new(id).context("--operator");
            let store = store.clone();
            async move {
                let id = id?;
                store
                    .operator(&id)
                    .await?
                    .with_context(|| format!("unknown operator {id}"))
            }
        };
        match args.command {
            OrderCommand::Create {
                operator,
                profile_type,
                iccid,
                eid,
                confirmation_code,
                matching_id,
                type_version,
                no_release,
                qr,
            } => {
                if type_version == Some(0) {
                    bail!(
                        "--type-version 0: versions are numbered from 1 (see `ferrosim profile-type show`)"
                    );
                }
                // Everything that can be checked is checked before a profile
                // is reserved, so a refused order leaves nothing behind.
                let wanted = OrderArgsChecked::check(
                    profile_type.as_deref(),
                    confirmation_code.as_deref(),
                    matching_id.as_deref(),
                    qr.as_deref(),
                )?;
                let op = operator_of(&operator).await?;
                if let Some(m) = &wanted.matching_id
                    && let Some(owner) = inst.store.matching_id_owner(m).await?
                {
                    bail!(
                        "--matching-id {m} is already used by the order of ICCID {owner}; \
                         nothing was reserved"
                    );
                }
                let ordered = smdp
                    .download_order_of_version(
                        &op,
                        &DownloadOrderRequest {
                            header: header(),
                            eid: eid.as_ref().map(ToString::to_string),
                            iccid: iccid.as_ref().map(ToString::to_string),
                            profile_type,
                        },
                        type_version,
                        now,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("order refused (downloadOrder): {e}"))?;
                let cc_required = confirmation_code.is_some();
                let confirmed = smdp
                    .confirm_order(
                        &op,
                        &ConfirmOrderRequest {
                            header: header(),
                            iccid: ordered.iccid.clone(),
                            eid: eid.as_ref().map(ToString::to_string),
                            matching_id,
                            confirmation_code,
                            smds_address: None,
                            release_flag: !no_release,
                        },
                        now,
                    )
                    .await;
                let confirmed = match confirmed {
                    Ok(c) => c,
                    Err(e) => {
                        // Undo the reservation: the profile goes back to the pool.
                        let undo = CancelOrderRequest {
                            header: header(),
                            iccid: ordered.iccid.clone(),
                            eid: None,
                            matching_id: None,
                            final_profile_status_indicator: "Available".into(),
                        };
                        match smdp.cancel_order(&op, &undo, now).await {
                            Ok(_) => bail!(
                                "order for ICCID {} refused (confirmOrder): {e}; the profile is \
                                 available again",
                                ordered.iccid
                            ),
                            Err(undo_error) => bail!(
                                "order for ICCID {} refused (confirmOrder): {e}; returning the \
                                 profile to the pool failed too ({undo_error}): run `ferrosim \
                                 order cancel --operator {operator} {}`",
                                ordered.iccid,
                                ordered.iccid
                            ),
                        }
                    }
                };
                let code =
                    ActivationCode::new(SmdpAddress::new(&address)?, Some(&confirmed.matching_id))?
                        .with_confirmation_code_required(cc_required);
                crate::audit_cmd::record(
                    &inst.store,
                    "order.create",
                    &ordered.iccid,
                    serde_json::json!({ "operator": operator, "released": !no_release }),
                )
                .await;
                println!("iccid:           {}", ordered.iccid);
                println!("matching id:     {}", confirmed.matching_id);
                println!("activation code: {}", code.to_qr_text());
                if let Some(path) = qr {
                    write_qr_png(&code.to_qr_text(), &path).with_context(|| {
                        format!(
                            "the order for ICCID {} exists; only its QR code was not written",
                            ordered.iccid
                        )
                    })?;
                    println!("QR code:         {}", path.display());
                }
            }
            OrderCommand::Release { operator, iccid } => {
                let op = operator_of(&operator).await?;
                smdp.release_profile(
                    &op,
                    &ReleaseProfileRequest {
                        header: header(),
                        iccid: iccid.to_string(),
                    },
                    now,
                )
                .await?;
                crate::audit_cmd::record(
                    &inst.store,
                    "order.release",
                    &iccid,
                    serde_json::json!({ "operator": operator }),
                )
                .await;
                println!("released");
            }
            OrderCommand::Cancel {
                operator,
                iccid,
                unavailable,
            } => {
                let op = operator_of(&operator).await?;
                let req = CancelOrderRequest {
                    header: header(),
                    iccid: iccid.to_string(),
                    eid: None,
                    matching_id: None,
                    final_profile_status_indicator: if unavailable {
                        "Unavailable"
                    } else {
                        "Available"
                    }
                    .into(),
                };
                smdp.cancel_order(&op, &req, now).await?;
                crate::audit_cmd::record(
                    &inst.store,
                    "order.cancel",
                    &req.iccid,
                    serde_json::json!({ "operator": operator, "final": req.final_profile_status_indicator }),
                )
                .await;
                println!("cancelled");
            }
            OrderCommand::List(list) => {
                crate::admin_lists_cmd::order_list(&inst.store, list).await?
            }
            OrderCommand::History(history) => {
                crate::order_history_cmd::order_history(&inst.store, history).await?
            }
            OrderCommand::Show { iccid } => {
                let Some(p) = inst.store.profile(&iccid).await? else {
                    bail!("no profile {iccid}");
                };
                println!("iccid:        {}", p.iccid);
                println!("operator:     {}", p.operator);
                println!(
                    "profile type: {}{}",
                    p.profile_type,
                    p.order
                        .as_ref()
                        .and_then(|o| o.type_version)
                        .map_or(String::new(), |v| format!(" (version {v})"))
                );
                println!("state:        {}", p.state);
                if let Some(o) = &p.order {
                    println!(
                        "eid:          {}",
                        o.eid.as_ref().map_or("-".into(), |e| e.to_string())
                    );
                    println!(
                        "matching id:  {}",
                        o.matching_id.as_ref().map_or("-".into(), |m| m.to_string())
                    );
                    println!(
                        "confirmation: {}",
                        if o.confirmation.is_some() {
                            "required"
                        } else {
                            "none"
                        }
                    );
                    println!("expires:      {}", o.expires_at.to_rfc3339());
                    println!("downloads:    {}", o.download_attempts);
                    match (p.device_state(), o.device) {
                        (Some(state), Some(d)) => println!(
                            "device:       {state} (notification seq {} received {})",
                            d.seq_number,
                            d.at.to_rfc3339()
                        ),
                        (Some(state), None) => println!("device:       {state}"),
                        (None, _) => {}
                    }
                    if let Some(f) = &o.failure {
                        println!(
                            "failure:      {} (bppCommandId {:?}, errorReason {:?})",
                            f.message, f.bpp_command_id, f.error_reason
                        );
                    }
                }
            }
        }
        inst.store.close().await;
        Ok(())
    })
}

/// The arguments of `order create`, checked before anything is reserved.
#[derive(Debug)]
struct OrderArgsChecked {
    /// The matching id asked for, if any.
    matching_id: Option<MatchingId>,
}

/// Longest confirmation code accepted (SGP.22 sets no limit; LPAs show a
/// text field and real codes are short).
const MAX_CONFIRMATION_CODE: usize = 64;

impl OrderArgsChecked {
    fn check(
        profile_type: Option<&str>,
        confirmation_code: Option<&str>,
        matching_id: Option<&str>,
        qr: Option<&Path>,
    ) -> anyhow::Result<Self> {
        if let Some(t) = profile_type
            && (t.trim().is_empty() || t.chars().any(char::is_control))
        {
            bail!("--type `{t}`: a profile type name is never empty or made of control characters");
        }
        if let Some(c) = confirmation_code {
            if c.trim().is_empty() {
                bail!(
                    "--confirmation-code is empty: give the code the end user must type, or \
                     leave the option out for an order without one"
                );
            }
            if c.chars().count() > MAX_CONFIRMATION_CODE || c.chars().any(char::is_control) {
                bail!(
                    "--confirmation-code must be 1 to {MAX_CONFIRMATION_CODE} characters \
                     without control characters"
                );
            }
        }
        let matching_id = match matching_id {
            Some(m) => {
                check_matching_id(m)?;
                Some(MatchingId::new(m).with_context(|| format!("--matching-id `{m}`"))?)
            }
            None => None,
        };
        if let Some(path) = qr {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                bail!("--qr {}: no directory {}", path.display(), dir.display());
            }
            if path.is_dir() {
                bail!("--qr {} is a directory; name a .png file", path.display());
            }
        }
        Ok(Self { matching_id })
    }
}

/// Shortest matching id accepted from the command line.
const MIN_MATCHING_ID: usize = 10;

/// The rule for a matching id chosen on the command line: it is the only
/// secret of an order without EID or confirmation code, it travels in a QR
/// code and is typed by hand, so it must be 10..=64 characters of `0-9`,
/// `A-Z` and `-` (upper case: QR alphanumeric mode, and LPAs that upper-case
/// what they scan), not starting or ending with `-`, with at least 10
/// letters or digits.
pub fn check_matching_id(m: &str) -> anyhow::Result<()> {
    let alnum = m.chars().filter(char::is_ascii_alphanumeric).count();
    let charset = m
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || c == '-');
    if !charset || m.len() > 64 || alnum < MIN_MATCHING_ID || m.starts_with('-') || m.ends_with('-')
    {
        bail!(
            "--matching-id `{m}` refused: a matching id must be {MIN_MATCHING_ID} to 64 characters \
             of 0-9, A-Z and '-', with at least {MIN_MATCHING_ID} letters or digits and no '-' at \
             either end (short ids are guessable; lower case and other characters are refused by \
             some LPAs); leave --matching-id out to get a generated one"
        );
    }
    Ok(())
}

/// Writes `text` as a QR code PNG (8 pixels per module, 4-module quiet zone).
pub fn write_qr_png(text: &str, path: &Path) -> anyhow::Result<()> {
    let code = qrcode::QrCode::new(text.as_bytes()).context("encoding the QR code")?;
    let width = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (8usize, 4usize);
    let side = (width + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            for dy in 0..scale {
                let row = (y * scale + dy) * side;
                pixels[row + x * scale..row + x * scale + scale].fill(0);
            }
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let side32 = u32::try_from(side)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_matching_id;

    #[test]
    fn matching_ids_chosen_by_hand() {
        for good in ["ABCDE-12345", "0123456789", "4X7QK-2M9ZD-PL3RW-8HJ5T"] {
            assert!(check_matching_id(good).is_ok(), "{good}");
        }
        let long = "A".repeat(65);
        for bad in [
            "1",
            "",
            "ABCD-1234",
            "abcde-12345",
            "-ABCDE12345",
            "ABCDE12345-",
            "ABCDE 12345",
            "ABCDE_12345",
            "ÄBCDE12345",
            long.as_str(),
            "----------A",
        ] {
            assert!(check_matching_id(bad).is_err(), "{bad:?}");
        }
    }
}
