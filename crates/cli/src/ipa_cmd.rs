//! `ferrosim ipa …`: the SGP.32 IPA of one device. The eUICC is a virtual
//! eUICC kept in a state file (`--euicc-state FILE --identity PKI_DIR`), a
//! card in a PC/SC reader (`--pcsc [--reader R]`) or the eUICC of a cellular
//! modem on a serial device (`--modem /dev/ttyUSB2`); the eIM is reached
//! over HTTPS with the ASN.1 or the JSON binding of ESipa. `poll` runs one
//! session now, `run` runs sessions on the IPA's schedule until Ctrl-C,
//! `add-initial-eim` installs a device's first eIM (the file `ferrosim eim
//! bootstrap` writes).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrosim_eim::Timestamp;
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ids::{Clock, SystemClock};
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::{FileStore, StateStore, run, run_session};
use ferrosim_ipa::modem::ModemTransport;
use ferrosim_ipa::{
    Action, Backoff, Binding, DownloadPath, Ipa, IpaConfig, ItemReport, LocalOperation,
    PackageOutcome, SessionReport,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es10::{Es10, Es10Link, Es10Options};
use ferrosim_lpa::transport::pcsc::{PcscTransport, ReaderSelector};
use ferrosim_lpa::{Transport, TransportError};
use serde_json::{Value, json};

/// `ferrosim ipa …`
#[derive(Debug, Args)]
pub struct IpaArgs {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(subcommand)]
    command: IpaCommand,
}

/// Where the eUICC is.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("card").required(true).args(["euicc_state", "pcsc", "modem"])))]
struct DeviceArgs {
    /// A virtual eUICC: its state file (`ferrosim euicc init`), saved after
    /// every command that changes it.
    #[arg(long, value_name = "FILE", requires = "identity")]
    euicc_state: Option<PathBuf>,
    /// The virtual eUICC's identity: a `ferrosim pki init` directory.
    #[arg(long, value_name = "PKI_DIR")]
    identity: Option<PathBuf>,
    /// With `--identity`: which eUICC of the directory (its EID).
    #[arg(long, value_name = "EID", value_parser = crate::id_args::eid)]
    eid: Option<ferrosim_ids::Eid>,
    /// A card in a PC/SC reader (the first one, or `--reader`).
    #[arg(long)]
    pcsc: bool,
    /// With `--pcsc`: the reader, by index or part of its name.
    #[arg(long, requires = "pcsc")]
    reader: Option<String>,
    /// The eUICC of a cellular modem on this serial device (AT+CCHO/AT+CGLA,
    /// or AT+CSIM when the modem has no logical-channel commands).
    #[arg(long, value_name = "DEVICE")]
    modem: Option<PathBuf>,
    /// Seconds a modem may take to answer one AT command.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    modem_timeout: u64,
}

#[derive(Debug, Args)]
struct EimArgs {
    /// The eIM: `host[:port]` (HTTPS), or a full `https://` URL (`http://`
    /// for a lab listener).
    #[arg(long, value_name = "ADDRESS")]
    eim: String,
    /// The ESipa binding: `asn1` (POST /gsma/rsp2/asn1) or `json` (POST
    /// /gsma/rsp2/esipa/<function>).
    #[arg(long, default_value = "asn1")]
    binding: Binding,
    /// Trust this CI or CA certificate (PEM or DER) for the eIM's and the
    /// SM-DP+'s TLS certificates; repeatable.
    #[arg(long = "ca", value_name = "PEM")]
    ca: Vec<PathBuf>,
    /// Accept any TLS certificate (tests only: the servers are not authenticated).
    #[arg(long)]
    insecure: bool,
    /// The IPA's state file (results not yet acknowledged by the eIM,
    /// pending state-change notice, failure count); created when missing.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Where profile downloads (and notifications) go: `direct` to the
    /// SM-DP+, or `via-eim` (indirect download, relayed by the eIM).
    #[arg(long, default_value = "direct", value_parser = parse_path)]
    download: DownloadPath,
    /// The last registered PLMN, MCC and MNC digits (e.g. `26201`), sent
    /// with GetEimPackage.
    #[arg(long, value_name = "MCCMNC", value_parser = parse_plmn)]
    rplmn: Option<[u8; 3]>,
    /// Tell the eIM the eUICC's state changed (notifyStateChange) in the next poll.
    #[arg(long)]
    notify_state_change: bool,
    /// Seconds an ESipa or ES9+ call may take.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum IpaCommand {
    /// Run one session now: send results still pending, poll the eIM and
    /// run everything it has queued, deliver notifications. Prints the
    /// session as JSON; fails when the session did.
    Poll {
        #[command(flatten)]
        eim: EimArgs,
    },
    /// Run sessions on the IPA's schedule (the poll interval after a good
    /// session, a growing backoff with jitter after a failed one) until
    /// interrupted. Prints each session as one JSON line.
    Run {
        #[command(flatten)]
        eim: EimArgs,
        /// Seconds between good sessions (±10 % jitter).
        #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// Seconds to wait after the first failed session (doubling, with jitter).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        backoff: u64,
        /// Longest wait after failed sessions, in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        backoff_max: u64,
    },
    /// Go back to the profile enabled before the last enable with rollback
    /// (ES10b ProfileRollback), e.g. when the new one does not connect. The
    /// eUICC's signed result goes to the eIM in the next session.
    Rollback {
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Enable the profile with the fallback attribute (ES10b
    /// ExecuteFallbackMechanism), e.g. after losing connectivity; the next
    /// session tells the eIM (notifyStateChange, cause fallback).
    Fallback {
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Go back from the fallback profile (ES10b ReturnFromFallback).
    ReturnFromFallback {
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Wipe the eUICC for a hand-over (ES10b EuiccMemoryReset, SGP.32):
    /// the chosen profiles, the default SM-DP+ address, the eIM
    /// configuration, the immediate-enable configuration. Prints what the
    /// eUICC answered for each part as JSON.
    MemoryReset {
        /// What to reset (comma-separated, at least one).
        #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
        reset: Vec<crate::ipa_reset::ResetOption>,
    },
    /// Install the device's first eIM: ES10b AddInitialEim with the request
    /// `ferrosim eim bootstrap` wrote.
    AddInitialEim {
        /// The AddInitialEimRequest (DER, `BF57`).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct LocalArgs {
    /// The IPA's state file (what the next session tells the eIM).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Ask the eUICC for a REFRESH (a device whose modem then re-reads the profile).
    #[arg(long)]
    refresh: bool,
}

fn parse_path(text: &str) -> Result<DownloadPath, String> {
    match text {
        "direct" => Ok(DownloadPath::Direct),
        "via-eim" => Ok(DownloadPath::ViaEim),
        other => Err(format!("`{other}`: use direct or via-eim")),
    }
}

/// MCC and MNC digits as 3GPP TS 24.008 codes them in 3 bytes.
fn parse_plmn(text: &str) -> Result<[u8; 3], String> {
    let digits: Vec<u8> = text
        .chars()
        .map(|c| c.to_digit(10).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{text}`: MCC and MNC are digits"))?;
    let (mcc, mnc) = match digits.len() {
        5 | 6 => digits.split_at(3),
        _ => return Err(format!("`{text}`: 3 MCC digits then 2 or 3 MNC digits")),
    };
    let mnc3 = mnc.get(2).copied().unwrap_or(0xF);
    Ok([
        (mcc[1] << 4) | mcc[0],
        (mnc3 << 4) | mcc[2],
        (mnc[1] << 4) | mnc[0],
    ])
}

/// The card the IPA talks to.
enum Card {
    Virtual {
        euicc: Box<VirtualEuicc>,
        state: PathBuf,
        saved: u64,
    },
    Pcsc(PcscTransport),
    Modem(ModemTransport),
}

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        match self {
            Card::Virtual {
                euicc,
                state,
                saved,
            } => {
                let response = euicc.handle_apdu(command, SystemClock.now());
                // Like a card's non-volatile memory: what changed is kept.
                if euicc.state_revision() != *saved {
                    euicc.state().save(&*state).map_err(|e| {
                        TransportError::Protocol(format!(
                            "cannot save the eUICC state to {}: {e}",
                            state.display()
                        ))
                    })?;
                    *saved = euicc.state_revision();
                }
                Ok(response)
            }
            Card::Pcsc(reader) => reader.transmit(command),
            Card::Modem(modem) => modem.transmit(command),
        }
    }
}

/// The card with the ISD-R selected on a logical channel.
struct Opened {
    card: Card,
    link: Es10Link,
}

impl Opened {
    fn open(device: &DeviceArgs) -> anyhow::Result<Self> {
        if let Some(path) = &device.modem {
            let (modem, link) =
                ferrosim_ipa::modem::connect(path, Duration::from_secs(device.modem_timeout))
                    .with_context(|| {
                        format!("reaching the eUICC of the modem at {}", path.display())
                    })?;
            return Ok(Self {
                card: Card::Modem(modem),
                link,
            });
        }
        let card = match (&device.euicc_state, device.pcsc) {
            (Some(state), _) => {
                let identity_dir = device
                    .identity
                    .as_ref()
                    .context("--euicc-state needs --identity PKI_DIR")?;
                let identity = EuiccIdentity::load_from_dir(
                    identity_dir,
                    device.eid.map(|e| e.digits()).as_deref(),
                )
                .with_context(|| {
                    format!("loading the eUICC identity from {}", identity_dir.display())
                })?;
                let st = EuiccState::load(state).with_context(|| {
                    format!(
                        "loading the eUICC state from {} (create it with `ferrosim euicc init`)",
                        state.display()
                    )
                })?;
                let euicc = VirtualEuicc::new(identity, st);
                let saved = euicc.state_revision();
                Card::Virtual {
                    euicc: Box::new(euicc),
                    state: state.clone(),
                    saved,
                }
            }
            (None, true) => {
                let selector = device
                    .reader
                    .as_deref()
                    .map_or(ReaderSelector::First, ReaderSelector::parse);
                Card::Pcsc(PcscTransport::connect(&selector)?)
            }
            (None, false) => bail!("give --euicc-state, --pcsc or --modem"),
        };
        let es10 = Es10::open(card, &Es10Options::default()).context("opening the ISD-R")?;
        let link = es10.link();
        Ok(Self {
            card: es10.into_transport(),
            link,
        })
    }

    /// Closes the logical channel.
    fn close(mut self) -> anyhow::Result<()> {
        match &mut self.card {
            Card::Modem(modem) => modem.close_channel().context("AT+CCHC")?,
            card => {
                let channel = self.link.channel();
                if channel != 0 {
                    card.transmit(&[0x00, 0x70, 0x80, channel])
                        .context("closing the logical channel")?;
                }
            }
        }
        Ok(())
    }
}

/// Runs `ferrosim ipa …`.
pub fn run_command(args: IpaArgs) -> anyhow::Result<()> {
    match args.command {
        IpaCommand::AddInitialEim { file } => {
            let request =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if request.get(..2) != Some(&[0xBF, 0x57][..]) {
                bail!("{} is not an AddInitialEimRequest (BF57)", file.display());
            }
            let mut opened = Opened::open(&args.device)?;
            let answer = es10_call(&mut opened.card, opened.link, &request);
            opened.close()?;
            let answer = answer.context("AddInitialEim")?;
            let answer: ferrosim_asn1::sgp32::AddInitialEimResponse =
                ferrosim_asn1::decode_der(&answer).context("AddInitialEim answer")?;
            match answer {
                ferrosim_asn1::sgp32::AddInitialEimResponse::addInitialEimOk(_) => {
                    println!("initial eIM added");
                    Ok(())
                }
                ferrosim_asn1::sgp32::AddInitialEimResponse::addInitialEimError(code) => {
                    bail!("the eUICC refused AddInitialEim: addInitialEimError {code}")
                }
            }
        }
        IpaCommand::MemoryReset { reset } => {
            let request = crate::ipa_reset::request(&reset)?;
            let mut opened = Opened::open(&args.device)?;
            let answer = es10_call(&mut opened.card, opened.link, &request);
            opened.close()?;
            let report = crate::ipa_reset::report(&reset, &answer.context("EuiccMemoryReset")?)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        IpaCommand::Rollback { local } => {
            local_operation(&args.device, &local, LocalOperation::ProfileRollback)
        }
        IpaCommand::Fallback { local } => {
            local_operation(&args.device, &local, LocalOperation::ExecuteFallback)
        }
        IpaCommand::ReturnFromFallback { local } => {
            local_operation(&args.device, &local, LocalOperation::ReturnFromFallback)
        }
        IpaCommand::Poll { eim } => {
            let (config, clients) = prepare(&eim)?;
            let mut store = FileStore::new(&eim.state);
            let state = store.load()?;
            let mut opened = Opened::open(&args.device)?;
            let runtime = runtime()?;
            let mut ipa = Ipa::new(config, opened.link, state, rand::rng(), Timestamp::now());
            if eim.notify_state_change {
                ipa.note_state_change(None);
            }
            let report = runtime.block_on(run_session(
                &mut ipa,
                &mut opened.card,
                &clients.0,
                &clients.1,
                &mut store,
            ));
            let closed = opened.close();
            let report = report?;
            println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
            closed?;
            if let Some(e) = &report.error {
                bail!("the session failed: {e}");
            }
            Ok(())
        }
        IpaCommand::Run {
            eim,
            interval,
            backoff,
            backoff_max,
        } => {
            let (mut config, clients) = prepare(&eim)?;
            config.poll_interval = Duration::from_secs(interval);
            config.backoff = Backoff {
                first: Duration::from_secs(backoff),
                max: Duration::from_secs(backoff_max.max(backoff)),
            };
            let mut store = FileStore::new(&eim.state);
            let state = store.load()?;
            let mut opened = Opened::open(&args.device)?;
            let runtime = runtime()?;
            let mut ipa = Ipa::new(config, opened.link, state, rand::rng(), Timestamp::now());
            if eim.notify_state_change {
                ipa.note_state_change(None);
            }
            eprintln!("IPA running (Ctrl-C to stop)");
            let ran = runtime.block_on(run(
                &mut ipa,
                &mut opened.card,
                &clients.0,
                &clients.1,
                &mut store,
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
                |report| println!("{}", report_json(report)),
            ));
            let closed = opened.close();
            ran?;
            closed
        }
    }
}

/// Runs an operation the IPA starts itself and prints its session.
fn local_operation(
    device: &DeviceArgs,
    local: &LocalArgs,
    operation: LocalOperation,
) -> anyhow::Result<()> {
    let mut store = FileStore::new(&local.state);
    let state = store.load()?;
    let mut opened = Opened::open(device)?;
    let mut ipa = Ipa::new(
        IpaConfig::default(),
        opened.link,
        state,
        rand::rng(),
        Timestamp::now(),
    );
    ipa.start_local(operation, local.refresh, Timestamp::now());
    let mut report = None;
    while let Some(action) = ipa.poll() {
        match action {
            Action::Transmit(apdu) => {
                let response = opened.card.transmit(&apdu);
                ipa.handle_apdu_response(response, Timestamp::now());
            }
            Action::Persist(state) => store.save(&state)?,
            Action::SessionDone(done) => report = Some(done),
            other => bail!("unexpected action of a local operation: {other:?}"),
        }
    }
    let closed = opened.close();
    let report = report.context("the operation did not end")?;
    println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    closed?;
    if let Some(e) = &report.error {
        bail!("{} failed: {e}", operation.name());
    }
    match report.items.first() {
        Some(ItemReport::Local { code, .. }) if *code != 0 => {
            bail!("the eUICC refused {}: result {code}", operation.name())
        }
        _ => Ok(()),
    }
}

/// One ES10 command over the open channel; the response data.
fn es10_call(card: &mut Card, link: Es10Link, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    use ferrosim_lpa::es10::{Exchange, Next};
    let (mut exchange, mut apdu) = Exchange::store_data(link, request)?;
    loop {
        let response = card.transmit(&apdu)?;
        match exchange.handle_response(response)? {
            Next::Transmit(next) => apdu = next,
            Next::Done(data) => return Ok(data),
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The IPA's settings and its clients (eIM, SM-DP+) from the arguments.
fn prepare(eim: &EimArgs) -> anyhow::Result<(IpaConfig, (HttpsEsipa, HttpsEs9Client))> {
    let trust = match (eim.insecure, eim.ca.is_empty()) {
        (true, _) => TlsTrust::InsecureAcceptAnyCertificate,
        (false, false) => TlsTrust::roots_from_files(&eim.ca)?,
        (false, true) => bail!(
            "give --ca FILE (the CI or CA certificate the eIM's TLS certificate chains to), \
             or --insecure for tests"
        ),
    };
    let timeout = Duration::from_secs(eim.timeout);
    let esipa = HttpsEsipa::new(&eim.eim, eim.binding, &trust, timeout)?;
    let mut options = HttpsOptions::new(trust);
    options.timeout = timeout;
    let es9 = HttpsEs9Client::new(&options)?;
    let config = IpaConfig {
        r_plmn: eim.rplmn,
        download_path: eim.download,
        ..IpaConfig::default()
    };
    Ok((config, (esipa, es9)))
}

/// A session as JSON.
fn report_json(report: &SessionReport) -> Value {
    let items: Vec<Value> = report
        .items
        .iter()
        .map(|item| match item {
            ItemReport::Package { counter, outcome } => {
                let outcome = match outcome {
                    PackageOutcome::Executed { seq_number, codes } => {
                        json!({"executed": {"seqNumber": seq_number, "codes": codes}})
                    }
                    PackageOutcome::Refused { code } => json!({"refused": code}),
                    PackageOutcome::RefusedUnsigned { code } => json!({"refusedUnsigned": code}),
                    PackageOutcome::Unreadable { reason } => json!({"unreadable": reason}),
                };
                json!({"package": {"counter": counter, "outcome": outcome}})
            }
            ItemReport::Local { operation, code } => {
                json!({"local": {"operation": operation, "result": code}})
            }
            ItemReport::EuiccData { tags } => json!({"euiccData": {
                "tags": tags.iter().map(|t| format!("{t:X}")).collect::<Vec<_>>()
            }}),
            ItemReport::Download {
                activation_code,
                outcome,
            } => json!({"download": {
                "activationCode": activation_code,
                "installed": outcome.as_ref().ok(),
                "error": outcome.as_ref().err(),
            }}),
        })
        .collect();
    json!({
        "eid": report.eid.map(|e| e.digits()),
        "started": report.started.to_rfc3339(),
        "ended": report.ended.to_rfc3339(),
        "items": items,
        "resultsSent": report.results_sent,
        "acknowledged": report.acknowledged,
        "pending": report.pending,
        "abandoned": report.abandoned.len(),
        "notifications": report.notifications.as_ref().map(|n| json!({
            "delivered": n.delivered,
            "undelivered": n.undelivered,
        })),
        "error": report.error.as_ref().map(ToString::to_string),
        "nextSession": report.next_session.to_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plmns_are_coded_as_24008_says() {
        assert_eq!(parse_plmn("26201").unwrap(), [0x62, 0xF2, 0x10]);
        assert_eq!(parse_plmn("310410").unwrap(), [0x13, 0x00, 0x14]);
        for bad in ["", "2620", "2620123", "26a01", "262 01"] {
            assert!(parse_plmn(bad).is_err(), "{bad}");
        }
    }
}
