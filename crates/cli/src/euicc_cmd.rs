//! `ferrosim euicc …`: the virtual eUICC outside a test: create its state
//! file, and serve it to vsmartcard's vpcd so that pcscd shows it as a card
//! in a reader to every PC/SC program (lpac, pySim, opensc-tool, and
//! `ferrosim lpa --transport pcsc`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::transport::vpcd::{self, VpcdEvent};

/// `ferrosim euicc …`
#[derive(Debug, Args)]
pub struct EuiccArgs {
    #[command(subcommand)]
    command: EuiccCommand,
}

/// The identity and state of one virtual eUICC.
#[derive(Debug, Args)]
struct Device {
    /// A test PKI directory (`ferrosim pki init`) holding the eUICC's
    /// certificate and key, its EUM and its CI.
    #[arg(long, value_name = "PKI_DIR")]
    identity: PathBuf,
    /// Which eUICC of the directory (its EID); needed when it holds several.
    #[arg(long)]
    eid: Option<String>,
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
}

/// Runs `ferrosim euicc …`.
pub fn run(args: EuiccArgs) -> anyhow::Result<()> {
    match args.command {
        EuiccCommand::Init { device, force } => init(&device, force),
        EuiccCommand::Vpcd { device, addr } => serve(&device, &addr),
    }
}

fn identity(device: &Device) -> anyhow::Result<EuiccIdentity> {
    EuiccIdentity::load_from_dir(&device.identity, device.eid.as_deref()).with_context(|| {
        format!(
            "loading the eUICC identity from {}",
            device.identity.display()
        )
    })
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
            let response = euicc.handle_apdu(apdu, SystemTime::now());
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

fn save(state: &EuiccState, path: &Path) -> anyhow::Result<()> {
    state
        .save(path)
        .with_context(|| format!("saving the eUICC state to {}", path.display()))
}
