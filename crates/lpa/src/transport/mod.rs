//! How APDUs reach an eUICC.
//!
//! [`Transport`] is the one seam between the LPA and a card: command APDU in,
//! response APDU (data followed by SW1 SW2) out. Implementations:
//!
//! - any closure `FnMut(&[u8]) -> Vec<u8>`: the in-process transport, e.g.
//!   `|apdu| euicc.handle_apdu(apdu, clock.now())` over a virtual eUICC (any
//!   `ferrosim_ids::Clock`: the system clock, or a manual one in tests);
//! - [`pcsc::PcscTransport`] (feature `pcsc`): a card in a PC/SC reader;
//! - the other direction, `vpcd` (feature `vpcd`): serving a virtual card *to* the vpcd
//!   driver of vsmartcard, so that every PC/SC program sees it in a reader.
//!
//! Nothing here knows about ES10; see [`crate::es10`].

#[cfg(feature = "pcsc")]
pub mod pcsc;
#[cfg(feature = "vpcd")]
pub mod vpcd;

use thiserror::Error;

/// Sends command APDUs to a card and returns its response APDUs.
pub trait Transport {
    /// Sends one command APDU; returns the response data followed by SW1 SW2.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

/// The in-process transport: a function that answers each APDU.
impl<F> Transport for F
where
    F: FnMut(&[u8]) -> Vec<u8>,
{
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self(command))
    }
}

/// Why an APDU could not be exchanged.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The PC/SC service failed (no service running, reader gone, card removed...).
    #[error("PC/SC: {operation}: {message}")]
    Pcsc {
        /// What was being done.
        operation: &'static str,
        /// The PC/SC error text.
        message: String,
    },
    /// No PC/SC reader is connected.
    #[error("no PC/SC reader found")]
    NoReader,
    /// No reader matches the requested name or index.
    #[error("no PC/SC reader matches `{wanted}` (readers: {available})")]
    ReaderNotFound {
        /// The name or index asked for.
        wanted: String,
        /// The readers present, comma-separated.
        available: String,
    },
    /// A reader was named that is not valid text for PC/SC.
    #[error("invalid reader name: {0}")]
    InvalidReaderName(String),
    /// The card answered with fewer than the two status bytes.
    #[error("response APDU of {0} byte(s) has no status word")]
    ResponseTooShort(usize),
    /// The command APDU is not well-formed (too short, too long, bad Lc).
    #[error("invalid command APDU: {0}")]
    InvalidCommand(&'static str),
    /// A socket (vpcd) failed.
    #[error("{operation}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent a message the protocol does not allow.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// A status word (SW1 SW2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// `9000`: normal processing.
    pub const OK: Self = Self(0x9000);

    /// From its two bytes.
    pub fn new(sw1: u8, sw2: u8) -> Self {
        Self(u16::from_be_bytes([sw1, sw2]))
    }

    /// SW1.
    pub fn sw1(self) -> u8 {
        self.0.to_be_bytes()[0]
    }

    /// SW2.
    pub fn sw2(self) -> u8 {
        self.0.to_be_bytes()[1]
    }

    /// `9000`, or `91xx` (success with a proactive command pending).
    pub fn is_success(self) -> bool {
        (self.sw1() == 0x90 && self.sw2() == 0x00) || self.sw1() == 0x91
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// A response APDU split into data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word.
    pub sw: StatusWord,
}

impl ResponseApdu {
    /// Splits `data || SW1 SW2`.
    pub fn parse(mut bytes: Vec<u8>) -> Result<Self, TransportError> {
        if bytes.len() < 2 {
            return Err(TransportError::ResponseTooShort(bytes.len()));
        }
        let sw2 = bytes.pop().unwrap_or_default();
        let sw1 = bytes.pop().unwrap_or_default();
        Ok(Self {
            data: bytes,
            sw: StatusWord::new(sw1, sw2),
        })
    }
}

/// A short command APDU (ISO/IEC 7816-4): header, optional data, optional Le.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandApdu {
    /// Class byte (with the logical channel bits).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data, at most 255 bytes.
    pub data: Vec<u8>,
    /// Expected response length (`Some(0)` means up to 256).
    pub le: Option<u8>,
}

impl CommandApdu {
    /// The encoded APDU (case 1 to 4, short length).
    pub fn to_bytes(&self) -> Result<Vec<u8>, TransportError> {
        let lc = u8::try_from(self.data.len())
            .map_err(|_| TransportError::InvalidCommand("more than 255 bytes of data"))?;
        let mut out = Vec::with_capacity(6 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(lc);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(le);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_transports() {
        let mut seen = Vec::new();
        let mut card = |apdu: &[u8]| {
            seen.push(apdu.to_vec());
            vec![0x90, 0x00]
        };
        assert_eq!(card.transmit(&[0, 1, 2, 3]).unwrap(), vec![0x90, 0x00]);
        assert_eq!(seen, vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn response_split() {
        let r = ResponseApdu::parse(vec![1, 2, 0x61, 0x10]).unwrap();
        assert_eq!(r.data, vec![1, 2]);
        assert_eq!(r.sw, StatusWord(0x6110));
        assert_eq!((r.sw.sw1(), r.sw.sw2()), (0x61, 0x10));
        assert!(matches!(
            ResponseApdu::parse(vec![0x90]),
            Err(TransportError::ResponseTooShort(1))
        ));
        assert!(StatusWord(0x9000).is_success());
        assert!(StatusWord(0x9110).is_success());
        assert!(!StatusWord(0x6A88).is_success());
        assert_eq!(StatusWord(0x6a88).to_string(), "6A88");
    }

    #[test]
    fn command_encoding() {
        let c = CommandApdu {
            cla: 0x81,
            ins: 0xE2,
            p1: 0x91,
            p2: 0,
            data: vec![0xBF, 0x2E, 0],
            le: Some(0),
        };
        assert_eq!(
            c.to_bytes().unwrap(),
            vec![0x81, 0xE2, 0x91, 0, 3, 0xBF, 0x2E, 0, 0]
        );
        let c = CommandApdu {
            data: vec![0; 256],
            ..c
        };
        assert!(c.to_bytes().is_err());
    }
}
