//! `ferrosim lpa …`: the LPA against a virtual eUICC kept in a state file
//! (`--transport inprocess:STATE_FILE,IDENTITY_DIR`) or a real one in a
//! PC/SC reader (`--transport pcsc[:READER]`): chip information, profile
//! list, download, enable, disable, delete, and notifications.

use crate::id_args;
use crate::pki_cmd::hex_upper;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ids::{Clock, Eid, SystemClock};
use ferrosim_lpa::download::{
    Consent, DownloadFailure, DownloadRequest, ProfileMetadata, download_profile_asking,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es10::types::ProfileId;
use ferrosim_lpa::es10::{Es10, Es10Options};
use ferrosim_lpa::notifications::{RetryPolicy, process_notifications};
use ferrosim_lpa::transport::pcsc::{PcscTransport, ReaderSelector};
use ferrosim_lpa::{ActivationCode, Transport, TransportError};
use ferrosim_saip::Iccid;

/// `ferrosim lpa …`
#[derive(Debug, Args)]
pub struct LpaArgs {
    /// Where the eUICC is: `inprocess:STATE_FILE,IDENTITY_DIR` (a virtual eUICC
    /// whose state lives in STATE_FILE, identity from a `ferrosim pki init`
    /// directory) or `pcsc[:READER]` (a card in a PC/SC reader, by index or
    /// part of its name).
    #[arg(long, default_value = "pcsc", value_parser = parse_transport)]
    transport: TransportSpec,
    /// With `inprocess`: the EID to use when IDENTITY_DIR holds several eUICCs.
    #[arg(long, value_name = "EID", value_parser = id_args::eid)]
    eid: Option<Eid>,
    /// Trust this CI or CA certificate (PEM or DER) for the SM-DP+'s TLS
    /// certificate; repeatable.
    #[arg(long = "ca", value_name = "PEM")]
    ca: Vec<PathBuf>,
    /// Accept any TLS certificate of the SM-DP+ (tests only: the server is not authenticated).
    #[arg(long)]
    insecure: bool,
    /// STORE DATA block size in bytes.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u8).range(1..=255))]
    block_size: u8,
    /// Talk to the ISD-R on the basic channel instead of opening a logical channel.
    #[arg(long)]
    basic_channel: bool,
    #[command(subcommand)]
    command: LpaCommand,
}

#[derive(Debug, Subcommand)]
enum LpaCommand {
    /// EID, versions, free memory, trusted CIs and configured addresses.
    ChipInfo,
    /// Profiles: list, download, enable, disable, delete.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Pending notifications: list, process (send and remove), remove.
    Notification {
        #[command(subcommand)]
        command: NotificationCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// List the installed profiles.
    List,
    /// Download and install a profile.
    Download {
        /// The activation code (`1$ADDRESS$MATCHING_ID[...]`, `LPA:` prefix allowed).
        #[arg(long)]
        activation_code: String,
        /// The confirmation code, when the order requires one. Without it,
        /// the code is asked for on a terminal; otherwise the download is
        /// postponed and the order stays open for a run with the code.
        #[arg(long)]
        confirmation_code: Option<String>,
    },
    /// Enable a profile.
    Enable {
        /// ICCID of the profile.
        #[arg(value_parser = id_args::iccid)]
        iccid: Iccid,
        /// Ask the eUICC to REFRESH the terminal (only where a modem is attached).
        #[arg(long)]
        refresh: bool,
    },
    /// Disable a profile.
    Disable {
        /// ICCID of the profile.
        #[arg(value_parser = id_args::iccid)]
        iccid: Iccid,
        /// Ask the eUICC to REFRESH the terminal (only where a modem is attached).
        #[arg(long)]
        refresh: bool,
    },
    /// Delete a (disabled) profile.
    Delete {
        /// ICCID of the profile.
        #[arg(value_parser = id_args::iccid)]
        iccid: Iccid,
    },
}

#[derive(Debug, Subcommand)]
enum NotificationCommand {
    /// List pending notifications.
    List,
    /// Send pending notifications to their SM-DP+ and remove the acknowledged ones.
    Process {
        /// Only these sequence numbers (repeatable); all by default.
        #[arg(long = "seq")]
        seq: Vec<i64>,
        /// Attempts per notification.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
        attempts: u32,
    },
    /// Remove a notification without sending it.
    Remove {
        /// Its sequence number.
        seq: i64,
    },
}

/// Where the eUICC is.
#[derive(Debug, Clone)]
enum TransportSpec {
    InProcess { state: PathBuf, identity: PathBuf },
    Pcsc(ReaderSelector),
}

fn parse_transport(text: &str) -> Result<TransportSpec, String> {
    if let Some(rest) = text.strip_prefix("inprocess:") {
        let (state, identity) = rest
            .split_once(',')
            .filter(|(s, i)| !s.is_empty() && !i.is_empty())
            .ok_or("expected inprocess:STATE_FILE,IDENTITY_DIR")?;
        return Ok(TransportSpec::InProcess {
            state: PathBuf::from(state),
            identity: PathBuf::from(identity),
        });
    }
    match text.split_once(':') {
        None if text == "pcsc" => Ok(TransportSpec::Pcsc(ReaderSelector::First)),
        Some(("pcsc", reader)) => Ok(TransportSpec::Pcsc(ReaderSelector::parse(reader))),
        _ => Err(format!(
            "unknown transport `{text}`: use inprocess:STATE_FILE,IDENTITY_DIR or pcsc[:READER]"
        )),
    }
}

/// The card behind the ES10 session.
enum Card {
    Virtual {
        euicc: Box<VirtualEuicc>,
        state: PathBuf,
    },
    Pcsc(PcscTransport),
}

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        match self {
            Card::Virtual { euicc, .. } => Ok(euicc.handle_apdu(command, SystemClock.now())),
            Card::Pcsc(reader) => reader.transmit(command),
        }
    }
}

impl Card {
    fn connect(args: &LpaArgs) -> anyhow::Result<Self> {
        match &args.transport {
            TransportSpec::InProcess { state, identity } => {
                let id =
                    EuiccIdentity::load_from_dir(identity, args.eid.map(|e| e.digits()).as_deref())
                        .with_context(|| {
                            format!("loading the eUICC identity from {}", identity.display())
                        })?;
                if !state.exists() {
                    bail!(
                        "no eUICC state at {} (create it with `ferrosim euicc init`)",
                        state.display()
                    );
                }
                let st = EuiccState::load(state)
                    .with_context(|| format!("loading the eUICC state from {}", state.display()))?;
                Ok(Card::Virtual {
                    euicc: Box::new(VirtualEuicc::new(id, st)),
                    state: state.clone(),
                })
            }
            TransportSpec::Pcsc(reader) => Ok(Card::Pcsc(PcscTransport::connect(reader)?)),
        }
    }

    /// Writes the virtual eUICC's state back (nothing for a real card).
    fn save(&self) -> anyhow::Result<()> {
        if let Card::Virtual { euicc, state } = self {
            euicc
                .state()
                .save(state)
                .with_context(|| format!("saving the eUICC state to {}", state.display()))?;
        }
        Ok(())
    }
}

/// Runs `ferrosim lpa …`.
pub fn run(args: LpaArgs) -> anyhow::Result<()> {
    // Check what can be checked before touching the card.
    let command = Prepared::new(&args)?;
    let card = Card::connect(&args)?;
    let options = Es10Options {
        block_size: usize::from(args.block_size),
        logical_channel: !args.basic_channel,
        ..Es10Options::default()
    };
    let mut es10 = Es10::open(card, &options).context("opening the ISD-R")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(command.execute(&mut es10));
    let closed = es10.close_channel();
    let card = es10.into_transport();
    let saved = card.save();
    result?;
    saved?;
    closed.context("closing the logical channel")?;
    Ok(())
}

/// A command with its arguments validated.
enum Prepared {
    ChipInfo,
    ProfileList,
    Download {
        code: ActivationCode,
        confirmation_code: Option<String>,
        es9: HttpsEs9Client,
    },
    Enable(Iccid, bool),
    Disable(Iccid, bool),
    Delete(Iccid),
    NotificationList,
    NotificationProcess {
        only: Vec<i64>,
        policy: RetryPolicy,
        es9: HttpsEs9Client,
    },
    NotificationRemove(i64),
}

impl Prepared {
    fn new(args: &LpaArgs) -> anyhow::Result<Self> {
        Ok(match &args.command {
            LpaCommand::ChipInfo => Self::ChipInfo,
            LpaCommand::Profile { command } => match command {
                ProfileCommand::List => Self::ProfileList,
                ProfileCommand::Download {
                    activation_code,
                    confirmation_code,
                } => {
                    let code = ActivationCode::parse(activation_code)
                        .context("invalid activation code")?;
                    if code.confirmation_code_required()
                        && confirmation_code.is_none()
                        && !std::io::stdin().is_terminal()
                    {
                        bail!(
                            "this activation code requires a confirmation code: give --confirmation-code CODE"
                        );
                    }
                    Self::Download {
                        code,
                        confirmation_code: confirmation_code.clone(),
                        es9: es9_client(args)?,
                    }
                }
                ProfileCommand::Enable { iccid, refresh } => Self::Enable(iccid.clone(), *refresh),
                ProfileCommand::Disable { iccid, refresh } => {
                    Self::Disable(iccid.clone(), *refresh)
                }
                ProfileCommand::Delete { iccid } => Self::Delete(iccid.clone()),
            },
            LpaCommand::Notification { command } => match command {
                NotificationCommand::List => Self::NotificationList,
                NotificationCommand::Process { seq, attempts } => Self::NotificationProcess {
                    only: seq.clone(),
                    policy: RetryPolicy {
                        attempts: *attempts,
                        ..RetryPolicy::default()
                    },
                    es9: es9_client(args)?,
                },
                NotificationCommand::Remove { seq } => Self::NotificationRemove(*seq),
            },
        })
    }

    async fn execute(self, es10: &mut Es10<Card>) -> anyhow::Result<()> {
        match self {
            Self::ChipInfo => chip_info(es10),
            Self::ProfileList => profile_list(es10),
            Self::Download {
                code,
                confirmation_code,
                es9,
            } => {
                let request = DownloadRequest::new(&code, confirmation_code.as_deref());
                let consent = |metadata: &ProfileMetadata| {
                    println!(
                        "profile: {} / {} (ICCID {}, {})",
                        metadata.service_provider_name,
                        metadata.profile_name,
                        metadata.iccid,
                        metadata
                            .class
                            .map_or("undefined class".to_owned(), |c| c.to_string())
                    );
                    Consent::Accept
                };
                let result =
                    download_profile_asking(es10, &es9, &request, consent, ask_confirmation_code)
                        .await;
                let outcome = result.map_err(|e| match e.failure {
                    DownloadFailure::ConfirmationCodeRequired => anyhow::anyhow!(
                        "{e}\nthe order requires a confirmation code: run again with \
                         --confirmation-code CODE (the session was cancelled as postponed, \
                         the order stays open)"
                    ),
                    _ => anyhow::anyhow!("{e}"),
                })?;
                println!("installed ICCID {}", outcome.iccid);
                if !outcome.result_delivered {
                    println!(
                        "the SM-DP+ did not acknowledge the installation result: it stays pending \
                         (send it with `ferrosim lpa notification process`)"
                    );
                }
                for t in &outcome.timings {
                    println!(
                        "  {:<28} {:>8.1} ms",
                        t.step.to_string(),
                        t.elapsed.as_secs_f64() * 1e3
                    );
                }
                Ok(())
            }
            Self::Enable(iccid, refresh) => {
                es10.enable_profile(&ProfileId::Iccid(iccid.clone()), refresh)?;
                println!("enabled {iccid}");
                pending_hint(es10)
            }
            Self::Disable(iccid, refresh) => {
                es10.disable_profile(&ProfileId::Iccid(iccid.clone()), refresh)?;
                println!("disabled {iccid}");
                pending_hint(es10)
            }
            Self::Delete(iccid) => {
                es10.delete_profile(&ProfileId::Iccid(iccid.clone()))?;
                println!("deleted {iccid}");
                pending_hint(es10)
            }
            Self::NotificationList => {
                let list = es10.list_notifications()?;
                if list.is_empty() {
                    println!("no pending notification");
                }
                for n in list {
                    println!(
                        "{:>5}  {:<8} {:<22} {}",
                        n.seq_number,
                        operation_name(n.operation),
                        n.iccid.as_deref().unwrap_or("-"),
                        n.address
                    );
                }
                Ok(())
            }
            Self::NotificationProcess { only, policy, es9 } => {
                let filter = (!only.is_empty()).then_some(only.as_slice());
                let report = process_notifications(es10, &es9, filter, &policy).await?;
                for d in &report.delivered {
                    println!(
                        "sent {} {} to {} ({} attempt(s))",
                        d.metadata.seq_number,
                        operation_name(d.metadata.operation),
                        d.metadata.address,
                        d.attempts
                    );
                }
                for u in &report.undelivered {
                    println!(
                        "KEPT {} {} for {}: {}",
                        u.metadata.seq_number,
                        operation_name(u.metadata.operation),
                        u.metadata.address,
                        u.failure
                    );
                }
                if report.delivered.is_empty() && report.undelivered.is_empty() {
                    println!("no pending notification");
                }
                if !report.is_complete() {
                    bail!(
                        "{} notification(s) not delivered; they stay on the eUICC",
                        report.undelivered.len()
                    );
                }
                Ok(())
            }
            Self::NotificationRemove(seq) => {
                es10.remove_notification(seq)?;
                println!("removed notification {seq}");
                Ok(())
            }
        }
    }
}

/// The HTTPS client from `--ca` / `--insecure`.
fn es9_client(args: &LpaArgs) -> anyhow::Result<HttpsEs9Client> {
    let trust = match (args.insecure, args.ca.is_empty()) {
        (true, _) => TlsTrust::InsecureAcceptAnyCertificate,
        (false, false) => TlsTrust::roots_from_files(&args.ca)?,
        (false, true) => bail!(
            "give --ca FILE (the CI certificate the SM-DP+'s TLS certificate chains to), \
             or --insecure for tests"
        ),
    };
    Ok(HttpsEs9Client::new(&HttpsOptions::new(trust))?)
}

fn chip_info(es10: &mut Es10<Card>) -> anyhow::Result<()> {
    let eid = es10.get_eid()?;
    let info = es10.get_euicc_info2()?;
    let addresses = es10.configured_addresses()?;
    println!("EID                 {eid}");
    println!("SGP.22 version      {}", info.svn);
    println!("profile version     {}", info.profile_version);
    println!("firmware            {}", info.firmware_version);
    if let Some(gp) = info.globalplatform_version {
        println!("GlobalPlatform      {gp}");
    }
    let r = info.ext_card_resource;
    if let Some(free) = r.free_non_volatile_memory {
        println!("free memory         {free} bytes");
    }
    if let Some(apps) = r.installed_applications {
        println!("installed apps      {apps}");
    }
    for id in &info.ci_pkids_for_verification {
        println!("CI (verification)   {}", hex_upper(id));
    }
    for id in &info.ci_pkids_for_signing {
        println!("CI (signing)        {}", hex_upper(id));
    }
    println!(
        "default SM-DP+      {}",
        addresses.default_dp_address.as_deref().unwrap_or("-")
    );
    println!("root SM-DS          {}", addresses.root_ds_address);
    Ok(())
}

fn profile_list(es10: &mut Es10<Card>) -> anyhow::Result<()> {
    let profiles = es10.get_profiles_info(None)?;
    if profiles.is_empty() {
        println!("no profile installed");
    }
    for p in profiles {
        println!(
            "{:<22} {:<9} {:<12} {} / {}{}",
            p.iccid.as_deref().unwrap_or("-"),
            p.state.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            p.class.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            p.service_provider_name.as_deref().unwrap_or("-"),
            p.profile_name.as_deref().unwrap_or("-"),
            p.nickname.map(|n| format!(" ({n})")).unwrap_or_default(),
        );
    }
    Ok(())
}

/// Tells how many notifications wait after a profile operation.
fn pending_hint(es10: &mut Es10<Card>) -> anyhow::Result<()> {
    let pending = es10.list_notifications()?.len();
    if pending > 0 {
        println!(
            "{pending} notification(s) pending: send with `ferrosim lpa notification process`"
        );
    }
    Ok(())
}

/// A notification's operation as the listings show it.
fn operation_name(operation: Option<ferrosim_lpa::es10::types::NotificationOperation>) -> String {
    operation.map_or_else(|| "unknown".to_owned(), |op| op.to_string())
}

/// Asks the end user for the order's confirmation code when standard input
/// is a terminal; `None` (the download is postponed, the order stays open)
/// otherwise or when nothing is typed.
fn ask_confirmation_code(metadata: &ProfileMetadata) -> Option<String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "the order for ICCID {} requires a confirmation code: ",
        metadata.iccid
    );
    let _ = stderr.flush();
    let mut line = String::new();
    match stdin.lock().read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim().to_owned()).filter(|c| !c.is_empty()),
        _ => None,
    }
}
