//! [`ModemTransport`]: APDUs to the eUICC of a modem over its serial
//! device, one AT command per APDU.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ferrosim_lpa::es10::{DEFAULT_BLOCK_SIZE, Es10Link, ISD_R_AID};
use ferrosim_lpa::{Es10, Es10Options, Transport, TransportError};
use rustix::termios::{OptionalActions, SpecialCodeIndex, tcgetattr, tcsetattr};

use super::at::{self, AnswerReader, AtError};

/// How APDUs reach the eUICC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModemMode {
    /// `AT+CGLA` on the logical channel `AT+CCHO` opened to the ISD-R.
    LogicalChannel(u8),
    /// `AT+CSIM` (the IPA manages the channel with APDUs).
    Csim,
}

/// A modem on a serial device.
#[derive(Debug)]
pub struct ModemTransport {
    port: File,
    mode: ModemMode,
    timeout: Duration,
}

impl ModemTransport {
    /// Opens the serial device `path` in raw mode; every command must be
    /// answered within `timeout`. Checks that a modem answers `AT`.
    pub fn open(path: &Path, timeout: Duration) -> Result<Self, AtError> {
        let io = |what: &str, e: &dyn std::fmt::Display| {
            AtError::Io(format!("{}: {what}: {e}", path.display()))
        };
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("open", &e))?;
        match tcgetattr(&port) {
            Ok(mut termios) => {
                termios.make_raw();
                // Reads return after 100 ms without data, so the timeout is ours.
                termios.special_codes[SpecialCodeIndex::VMIN] = 0;
                termios.special_codes[SpecialCodeIndex::VTIME] = 1;
                tcsetattr(&port, OptionalActions::Now, &termios)
                    .map_err(|e| io("set raw mode", &e))?;
            }
            Err(e) => return Err(io("not a serial device", &e)),
        }
        let mut modem = Self {
            port,
            mode: ModemMode::Csim,
            timeout,
        };
        modem.command("AT\r")?;
        Ok(modem)
    }

    /// How APDUs are sent now.
    pub fn mode(&self) -> ModemMode {
        self.mode
    }

    /// Sends one AT command line and reads its answer.
    pub fn command(&mut self, line: &str) -> Result<at::Answer, AtError> {
        let name = at::command_name(line);
        self.port
            .write_all(line.as_bytes())
            .and_then(|()| self.port.flush())
            .map_err(|e| AtError::Io(format!("{name}: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        let mut reader = AnswerReader::new();
        let mut buffer = [0u8; 512];
        loop {
            let n = match self.port.read(&mut buffer) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(AtError::Io(format!("{name}: {e}"))),
            };
            if let Some(answer) = reader.feed(line, &buffer[..n])? {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                return Err(AtError::Timeout { command: name });
            }
        }
    }

    /// `AT+CCHO` to the ISD-R: the logical channel, or the error (a modem
    /// without the command answers `ERROR`).
    pub fn open_channel(&mut self) -> Result<u8, AtError> {
        let line = at::ccho(&ISD_R_AID);
        let answer = self.command(&line)?;
        let channel = at::channel_of(&line, &answer)?;
        self.mode = ModemMode::LogicalChannel(channel);
        Ok(channel)
    }

    /// `AT+CCHC` of the logical channel in use (nothing in CSIM mode).
    pub fn close_channel(&mut self) -> Result<(), AtError> {
        if let ModemMode::LogicalChannel(channel) = self.mode {
            self.command(&at::cchc(channel))?;
            self.mode = ModemMode::Csim;
        }
        Ok(())
    }
}

impl Transport for ModemTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let line = match self.mode {
            ModemMode::LogicalChannel(channel) => at::cgla(channel, command),
            ModemMode::Csim => at::csim(command),
        };
        let answer = self.command(&line).map_err(protocol)?;
        at::response_of(&line, &answer).map_err(protocol)
    }
}

fn protocol(e: AtError) -> TransportError {
    TransportError::Protocol(e.to_string())
}

/// Opens the modem at `path` and reaches its ISD-R: on a logical channel
/// from `AT+CCHO`, or, when the modem refuses it, with `AT+CSIM` and the
/// IPA's own MANAGE CHANNEL and SELECT. Returns the transport and the link
/// the IPA talks over.
pub fn connect(path: &Path, timeout: Duration) -> Result<(ModemTransport, Es10Link), AtError> {
    let mut modem = ModemTransport::open(path, timeout)?;
    match modem.open_channel() {
        Ok(channel) => {
            tracing::info!(channel, "ISD-R reached with AT+CCHO/AT+CGLA");
            let link = Es10Link::new(channel, DEFAULT_BLOCK_SIZE)
                .map_err(|e| AtError::Io(e.to_string()))?;
            Ok((modem, link))
        }
        Err(e @ (AtError::Error { .. } | AtError::Garbage { .. })) => {
            tracing::info!(error = %e, "no logical channel from the modem: falling back to AT+CSIM");
            let es10 = Es10::open(modem, &Es10Options::default())
                .map_err(|e| AtError::Io(format!("over AT+CSIM: {e}")))?;
            let link = es10.link();
            Ok((es10.into_transport(), link))
        }
        Err(e) => Err(e),
    }
}
