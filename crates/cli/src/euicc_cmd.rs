//! `ferrosim euicc …`: the virtual eUICC outside a test: create its state
//! file, and serve it to vsmartcard's vpcd so that pcscd shows it as a card
//! in a reader to every PC/SC program (lpac, pySim, opensc-tool, and
//! `ferrosim lpa --transport pcsc`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ids::{Clock, Eid, SystemClock};
use ferrosim_lpa::transport::vpcd::{self, VpcdEvent};

use crate::id_args;

/// `ferrosim euicc …`
#[derive(Debug, Args)]
pub struct EuiccArgs {
    #[command(subcommand)]
    command: EuiccCommand,
}

/// The identity and state of one virtual eUICC: a `ferrosim pki init`
/// directory, or the four files of any other layout (the GSMA SGP.26 set).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["identity", "euicc_cert"])))]
struct Device {
    /// A test PKI directory (`ferrosim pki init`) holding the eUICC's
    /// certificate and key, its EUM and its CI.
    #[arg(long, value_name = "PKI_DIR", conflicts_with_all = ["euicc_cert", "euicc_key", "eum_cert", "ci_cert"])]
    identity: Option<PathBuf>,
    /// Which eUICC of the directory (its EID); needed when it holds several.
    #[arg(long, requires = "identity", value_name = "EID", value_parser = id_args::eid)]
    eid: Option<Eid>,
    /// The eUICC certificate (CERT.EUICC.ECDSA), PEM or DER.
    #[arg(long, value_name = "FILE", requires_all = ["euicc_key", "eum_cert", "ci_cert"])]
    euicc_cert: Option<PathBuf>,
    /// The eUICC private key (SK.EUICC.ECDSA): PKCS#8 or SEC1, PEM or DER.
    #[arg(long, value_name = "FILE", requires = "euicc_cert")]
    euicc_key: Option<PathBuf>,
    /// The EUM certificate (CERT.EUM.ECDSA), PEM or DER.
    #[arg(long, value_name = "FILE", requires = "euicc_cert")]
    eum_cert: Option<PathBuf>,
    /// A trusted CI certificate (PEM or DER; repeat for several, a PEM file may hold several).
    #[arg(long, value_name = "FILE", requires = "euicc_cert")]
    ci_cert: Vec<PathBuf>,
    /// The state file (installed profiles, notifications).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
}

#[derive(Debug, Subcommand)]
enum EuiccCommand {
    /// Create the state file of a new, empty virtual eUICC.
    Init {
        #[command(flatten)]
        device: Device,
        /// Replace an existing state file (its profiles are lost).
        #[arg(long)]
        force: bool,
    },
    /// Serve the virtual eUICC to vpcd (pcscd's virtual reader driver),
    /// saving the state after each command that changes it. Runs until
    /// interrupted; reconnects when pcscd restarts.
    Vpcd {
        #[command(flatten)]
        device: Device,
        /// Where vpcd listens for its card.
        #[arg(long, default_value = vpcd::DEFAULT_ADDR)]
        addr: String,
    },
    /// Serve the virtual eUICC as the SIM of a simulated cellular modem on a
    /// pseudo-terminal, answering AT+CCHO, AT+CGLA, AT+CCHC and AT+CSIM
    /// (for `ferrosim ipa --modem`). Prints the terminal's path, saves the
    /// state within 50 ms of a change and when stopped, runs until interrupted.
    Modem {
        #[command(flatten)]
        device: Device,
        /// Answer AT+CCHO with ERROR, as modems without logical-channel
        /// commands do (the IPA then uses AT+CSIM).
        #[arg(long)]
        no_logical_channels: bool,
    },
}

/// Runs `ferrosim euicc …`.
pub fn run(args: EuiccArgs) -> anyhow::Result<()> {
    match args.command {
        EuiccCommand::Init { device, force } => init(&device, force),
        EuiccCommand::Vpcd { device, addr } => serve(&device, &addr),
        EuiccCommand::Modem {
            device,
            no_logical_channels,
        } => modem(&device, no_logical_channels),
    }
}

fn identity(device: &Device) -> anyhow::Result<EuiccIdentity> {
    match (
        &device.identity,
        &device.euicc_cert,
        &device.euicc_key,
        &device.eum_cert,
    ) {
        (Some(dir), ..) => {
            EuiccIdentity::load_from_dir(dir, device.eid.map(|e| e.digits()).as_deref())
                .with_context(|| format!("loading the eUICC identity from {}", dir.display()))
        }
        (None, Some(cert), Some(key), Some(eum)) if !device.ci_cert.is_empty() => {
            EuiccIdentity::load_files(cert, key, eum, &device.ci_cert)
                .context("loading the eUICC identity")
        }
        _ => bail!(
            "give --identity PKI_DIR, or all of --euicc-cert, --euicc-key, --eum-cert and --ci-cert"
        ),
    }
}

fn init(device: &Device, force: bool) -> anyhow::Result<()> {
    let id = identity(device)?;
    if device.state.exists() && !force {
        bail!(
            "{} exists already (use --force to replace it and lose its profiles)",
            device.state.display()
        );
    }
    save(&EuiccState::default(), &device.state)?;
    println!(
        "virtual eUICC {} initialised in {}",
        id.eid(),
        device.state.display()
    );
    Ok(())
}

fn serve(device: &Device, addr: &str) -> anyhow::Result<()> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid vpcd address `{addr}` (expected HOST:PORT)"))?
        .collect();
    let id = identity(device)?;
    let state = EuiccState::load(&device.state).with_context(|| {
        format!(
            "loading the eUICC state from {} (create it with `ferrosim euicc init`)",
            device.state.display()
        )
    })?;
    let eid = id.eid().to_string();
    let mut euicc = VirtualEuicc::new(id, state);
    let mut saved_revision = euicc.state_revision();
    let mut save_error: Option<anyhow::Error> = None;
    eprintln!("serving eUICC {eid} to vpcd at {addr} (Ctrl-C to stop)");
    vpcd::serve(resolved.as_slice(), |event: VpcdEvent<'_>| match event {
        VpcdEvent::GetAtr => euicc.atr().to_vec(),
        VpcdEvent::PowerOn | VpcdEvent::PowerOff | VpcdEvent::Reset => {
            euicc.reset();
            Vec::new()
        }
        VpcdEvent::Apdu(apdu) => {
            let response = euicc.handle_apdu(apdu, SystemClock.now());
            if euicc.state_revision() != saved_revision {
                match save(euicc.state(), &device.state) {
                    Ok(()) => saved_revision = euicc.state_revision(),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "state not saved");
                        save_error = Some(e);
                    }
                }
            }
            response
        }
    })
    .with_context(|| format!("serving vpcd at {addr}"))?;
    match save_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn modem(device: &Device, no_logical_channels: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let id = identity(device)?;
    let state = EuiccState::load(&device.state).with_context(|| {
        format!(
            "loading the eUICC state from {} (create it with `ferrosim euicc init`)",
            device.state.display()
        )
    })?;
    let eid = id.eid().to_string();
    let modem = ferrosim_ipa::modem::simulated::SimulatedModem::start(VirtualEuicc::new(id, state))
        .context("opening a pseudo-terminal")?;
    modem.refuse_logical_channels(no_logical_channels);
    println!("{}", modem.path().display());
    std::io::stdout().flush().context("writing the path")?;
    eprintln!(
        "eUICC {eid} is the SIM of a modem at {} (Ctrl-C to stop)",
        modem.path().display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut saved = modem.card().state_revision();
    runtime.block_on(async {
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            let stopped = tokio::select! {
                _ = &mut stop => true,
                () = tokio::time::sleep(std::time::Duration::from_millis(50)) => false,
            };
            let card = modem.card();
            if card.state_revision() != saved {
                save(card.state(), &device.state)?;
                saved = card.state_revision();
            }
            if stopped {
                return Ok(());
            }
        }
    })
}

fn save(state: &EuiccState, path: &Path) -> anyhow::Result<()> {
    state
        .save(path)
        .with_context(|| format!("saving the eUICC state to {}", path.display()))
}
