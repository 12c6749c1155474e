//! A simulated cellular modem: a virtual eUICC behind an AT command
//! interpreter on a pseudo-terminal, for tests of the modem driver (and for
//! trying an IPA without hardware). Its slave side (`/dev/pts/N`) is what
//! the IPA opens as the modem's serial device.
//!
//! It answers `AT`, `ATE0`, `AT+CCHO`, `AT+CGLA`, `AT+CSIM` and `AT+CCHC`
//! like a modem of TS 27.007, and can be told to misbehave: refuse logical
//! channels (so the IPA falls back to `AT+CSIM`), or answer APDU commands
//! with `ERROR` or with garbage after a number of good ones.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ferrosim_euicc::VirtualEuicc;
use ferrosim_ids::{Clock, SystemClock};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// How the simulated modem misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misbehaviour {
    /// It does not.
    #[default]
    None,
    /// APDU commands after the first `n` are answered `ERROR`.
    ErrorAfter(usize),
    /// APDU commands after the first `n` are answered with garbage.
    GarbageAfter(usize),
}

#[derive(Debug, Default)]
struct Settings {
    misbehaviour: Misbehaviour,
    no_logical_channels: bool,
}

/// The modem (see the module documentation). Stops when dropped.
#[derive(Debug)]
pub struct SimulatedModem {
    path: PathBuf,
    card: Arc<Mutex<VirtualEuicc>>,
    settings: Arc<Mutex<Settings>>,
    apdus: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SimulatedModem {
    /// A modem whose SIM is `card`, on a new pseudo-terminal; the card sees
    /// the system time.
    pub fn start(card: VirtualEuicc) -> std::io::Result<Self> {
        Self::start_with_clock(card, Arc::new(SystemClock))
    }

    /// [`SimulatedModem::start`] with the card reading the time from
    /// `clock` (a `ManualClock` in tests of certificate expiry, the
    /// simulator's virtual clock).
    pub fn start_with_clock(card: VirtualEuicc, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let path = PathBuf::from(name.to_string_lossy().into_owned());
        let flags = fcntl_getfl(&master)?;
        fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
        let master = File::from(master);
        let card = Arc::new(Mutex::new(card));
        let settings = Arc::new(Mutex::new(Settings::default()));
        let apdus = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let interpreter = Interpreter {
                card: Arc::clone(&card),
                settings: Arc::clone(&settings),
                apdus: Arc::clone(&apdus),
                clock,
            };
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("simulated-modem".into())
                .spawn(move || serve(master, interpreter, &stop))?
        };
        Ok(Self {
            path,
            card,
            settings,
            apdus,
            stop,
            thread: Some(thread),
        })
    }

    /// The serial device to open (the pseudo-terminal's slave side).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SIM, e.g. to look at its state.
    pub fn card(&self) -> MutexGuard<'_, VirtualEuicc> {
        self.card.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// APDU commands answered so far.
    pub fn apdus(&self) -> usize {
        self.apdus.load(Ordering::Relaxed)
    }

    /// Makes the modem misbehave from now on (counting APDUs from now).
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        self.apdus.store(0, Ordering::Relaxed);
        lock(&self.settings).misbehaviour = misbehaviour;
    }

    /// Makes `AT+CCHO` answer `ERROR`, as modems without logical-channel
    /// commands do.
    pub fn refuse_logical_channels(&self, refuse: bool) {
        lock(&self.settings).no_logical_channels = refuse;
    }
}

impl Drop for SimulatedModem {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads command lines from the master side and writes the answers.
fn serve(mut master: File, interpreter: Interpreter, stop: &AtomicBool) {
    let mut line = Vec::new();
    let mut buffer = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        match master.read(&mut buffer) {
            Ok(0) => std::thread::sleep(Duration::from_millis(2)),
            Ok(n) => {
                for &b in &buffer[..n] {
                    if b == b'\r' || b == b'\n' {
                        if line.is_empty() {
                            continue;
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        let answer = interpreter.answer(text.trim());
                        if master.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    } else if line.len() < 8192 {
                        line.push(b);
                    }
                }
            }
            // Nothing to read yet, or no one has the slave side open (EIO).
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

struct Interpreter {
    card: Arc<Mutex<VirtualEuicc>>,
    settings: Arc<Mutex<Settings>>,
    apdus: Arc<AtomicUsize>,
    clock: Arc<dyn Clock>,
}

const OK: &str = "\r\nOK\r\n";
const ERROR: &str = "\r\nERROR\r\n";

impl Interpreter {
    fn answer(&self, line: &str) -> String {
        let upper = line.to_ascii_uppercase();
        if upper == "AT" || upper == "ATE0" || upper == "ATE1" {
            return OK.into();
        }
        if let Some(aid) = upper.strip_prefix("AT+CCHO=") {
            return self.ccho(aid.trim_matches('"'));
        }
        if let Some(args) = upper.strip_prefix("AT+CGLA=") {
            let Some((channel, rest)) = args.split_once(',') else {
                return ERROR.into();
            };
            if channel.parse::<u8>().is_err() {
                return ERROR.into();
            }
            return self.apdu("+CGLA", rest);
        }
        if let Some(args) = upper.strip_prefix("AT+CSIM=") {
            return self.apdu("+CSIM", args);
        }
        if let Some(channel) = upper.strip_prefix("AT+CCHC=") {
            return match channel.parse::<u8>() {
                Ok(c) => {
                    self.transmit(&[0x00, 0x70, 0x80, c]);
                    OK.into()
                }
                Err(_) => ERROR.into(),
            };
        }
        ERROR.into()
    }

    fn transmit(&self, apdu: &[u8]) -> Vec<u8> {
        lock(&self.card).handle_apdu(apdu, self.clock.now())
    }

    fn ccho(&self, aid: &str) -> String {
        if lock(&self.settings).no_logical_channels {
            return ERROR.into();
        }
        let Ok(aid) = hex::decode(aid) else {
            return "\r\n+CME ERROR: 50\r\n".into();
        };
        let opened = self.transmit(&[0x00, 0x70, 0x00, 0x00, 0x01]);
        let (channel, sw) = match opened.as_slice() {
            [c, 0x90, 0x00] => (*c, 0x9000),
            _ => return "\r\n+CME ERROR: 4\r\n".into(),
        };
        let _ = sw;
        let cla = if channel < 4 {
            channel
        } else {
            0x40 | (channel - 4)
        };
        let mut select = vec![cla, 0xA4, 0x04, 0x00, aid.len() as u8];
        select.extend_from_slice(&aid);
        select.push(0x00);
        let selected = self.transmit(&select);
        if selected.ends_with(&[0x90, 0x00])
            || selected.get(selected.len().saturating_sub(2)) == Some(&0x61)
        {
            format!("\r\n+CCHO: {channel}{OK}")
        } else {
            self.transmit(&[0x00, 0x70, 0x80, channel]);
            "\r\n+CME ERROR: 4\r\n".into()
        }
    }

    fn apdu(&self, prefix: &str, args: &str) -> String {
        let Some((length, data)) = args.split_once(',') else {
            return ERROR.into();
        };
        let data = data.trim_matches('"');
        let Ok(apdu) = hex::decode(data) else {
            return ERROR.into();
        };
        if length.parse::<usize>().ok() != Some(data.len()) {
            return ERROR.into();
        }
        let count = self.apdus.fetch_add(1, Ordering::Relaxed);
        match lock(&self.settings).misbehaviour {
            Misbehaviour::ErrorAfter(n) if count >= n => return ERROR.into(),
            Misbehaviour::GarbageAfter(n) if count >= n => {
                return "\r\n+CGLA: 9,\"Q\u{1}#garbage\r\nOK\r\n".into();
            }
            _ => {}
        }
        let response = hex::encode_upper(self.transmit(&apdu));
        format!("\r\n{prefix}: {},\"{response}\"{OK}", response.len())
    }
}
