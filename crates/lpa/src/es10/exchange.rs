//! One ES10 command (or one plain APDU) as a sans-IO conversation with the
//! card: [`Exchange`] hands out the command APDUs to send, one at a time,
//! and is told each response APDU; it follows `61xx` with GET RESPONSE and
//! `6Cxx` by repeating the command with the right Le, and ends with the
//! response data or an [`Es10Error`].
//!
//! An ES10 command goes as a chain of STORE DATA commands (CLA `80` with
//! the channel, INS `E2`, P1 `11` for more blocks and `91` for the last, P2
//! the block number) of at most [`Es10Link::block_size`] bytes each.
//!
//! The blocking [`super::Es10`] driver and the state machines of the LPA
//! (download, notifications, and later the IPA's package execution) share
//! this room: the machines never touch a transport, they hand out what
//! [`Exchange`] asks to send.

use super::{Es10Error, MAX_BLOCK_SIZE, class_byte};
use crate::transport::{CommandApdu, ResponseApdu};

/// Most GET RESPONSE rounds for one command before the card is deemed broken.
const MAX_GET_RESPONSE_ROUNDS: usize = 4096;
/// Most STORE DATA blocks in one ES10 command (P2 is one byte).
const MAX_BLOCKS: usize = 256;

/// The logical channel the ISD-R is selected on, and the STORE DATA block
/// size: what every ES10 exchange on one card needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Es10Link {
    channel: u8,
    block_size: usize,
}

impl Es10Link {
    /// A link on `channel` (0 to 19) cutting commands into blocks of
    /// `block_size` bytes (1 to 255).
    pub fn new(channel: u8, block_size: usize) -> Result<Self, Es10Error> {
        if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(Es10Error::InvalidBlockSize(block_size));
        }
        if channel > 19 {
            return Err(Es10Error::NoChannel(format!(
                "channel {channel} is not 0 to 19"
            )));
        }
        Ok(Self {
            channel,
            block_size,
        })
    }

    /// The logical channel (0 = basic channel).
    pub fn channel(&self) -> u8 {
        self.channel
    }

    /// Data bytes per STORE DATA block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The class byte for `base` (`00` or `80`) on this channel.
    pub fn cla(&self, base: u8) -> u8 {
        class_byte(base, self.channel)
    }
}

/// What to do after a response APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this command APDU and report its response.
    Transmit(Vec<u8>),
    /// The exchange is complete: the response data (empty when the command
    /// has none).
    Done(Vec<u8>),
}

/// One conversation with the card (see the module documentation).
#[derive(Debug)]
pub struct Exchange {
    /// Name of the command, for errors (`STORE DATA`, `SELECT`, ...).
    command: &'static str,
    link: Es10Link,
    /// The commands still to send after the current one (STORE DATA blocks).
    blocks: Vec<CommandApdu>,
    /// Index in `blocks` of the command now being answered.
    current: usize,
    /// Whether `blocks[current]` itself is waiting for its response, or a
    /// `6Cxx` repeat of it or a GET RESPONSE after it. (The command a `6Cxx`
    /// asks to repeat is always `blocks[current]`, so no copy of the
    /// waiting command is kept: one fewer allocation and copy per block.)
    phase: Phase,
    /// Response data collected so far.
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The command itself was sent.
    Command,
    /// The command was repeated with the Le of a `6Cxx`.
    Repeated,
    /// GET RESPONSE number `n` was sent.
    GetResponse(usize),
}

impl Exchange {
    /// The exchange sending the ES10 command `request` (a complete BER-TLV)
    /// with STORE DATA; returns it with the first APDU to send.
    pub fn store_data(link: Es10Link, request: &[u8]) -> Result<(Self, Vec<u8>), Es10Error> {
        let invalid = |reason: &str| Es10Error::InvalidRequest {
            function: "STORE DATA",
            reason: reason.to_owned(),
        };
        if request.is_empty() {
            return Err(invalid("empty command"));
        }
        let count = request.len().div_ceil(link.block_size);
        if count > MAX_BLOCKS {
            return Err(invalid("more than 256 STORE DATA blocks"));
        }
        let blocks: Vec<CommandApdu> = request
            .chunks(link.block_size)
            .enumerate()
            .map(|(number, block)| CommandApdu {
                cla: link.cla(0x80),
                ins: 0xE2,
                p1: if number + 1 == count { 0x91 } else { 0x11 },
                p2: u8::try_from(number).unwrap_or(u8::MAX),
                data: block.to_vec(),
                le: None,
            })
            .collect();
        Self::start("STORE DATA", link, blocks)
    }

    /// The exchange sending one command APDU (SELECT, MANAGE CHANNEL close,
    /// ...), following `61xx` and `6Cxx` like any other.
    pub fn single(
        command: &'static str,
        link: Es10Link,
        apdu: CommandApdu,
    ) -> Result<(Self, Vec<u8>), Es10Error> {
        Self::start(command, link, vec![apdu])
    }

    fn start(
        command: &'static str,
        link: Es10Link,
        blocks: Vec<CommandApdu>,
    ) -> Result<(Self, Vec<u8>), Es10Error> {
        let first = blocks.first().ok_or(Es10Error::InvalidRequest {
            function: command,
            reason: "no command".into(),
        })?;
        let bytes = first.to_bytes()?;
        Ok((
            Self {
                command,
                link,
                blocks,
                current: 0,
                phase: Phase::Command,
                data: Vec::new(),
            },
            bytes,
        ))
    }

    /// The response APDU (data followed by SW1 SW2) to the last command
    /// handed out; says what to send next or gives the response data.
    pub fn handle_response(&mut self, response: Vec<u8>) -> Result<Next, Es10Error> {
        let response = ResponseApdu::parse(response)?;
        let sw = response.sw;
        if sw.sw1() == 0x6C
            && self.phase == Phase::Command
            && let Some(waiting) = self.blocks.get(self.current)
        {
            // Wrong Le: the same command again with the Le the card wants.
            let retry = CommandApdu {
                le: Some(sw.sw2()),
                ..waiting.clone()
            };
            let bytes = retry.to_bytes()?;
            self.phase = Phase::Repeated;
            return Ok(Next::Transmit(bytes));
        }
        self.data.extend_from_slice(&response.data);
        if sw.sw1() == 0x61 {
            let rounds = match self.phase {
                Phase::GetResponse(n) => n + 1,
                _ => 1,
            };
            if rounds > MAX_GET_RESPONSE_ROUNDS {
                return Err(Es10Error::Status {
                    command: "GET RESPONSE",
                    sw,
                });
            }
            // GET RESPONSE in the class of the command it follows (80 after
            // STORE DATA, as common LPAs send it; 00 after SELECT).
            let base = self.blocks.get(self.current).map_or(0, |c| c.cla & 0x80);
            let get = CommandApdu {
                cla: self.link.cla(base),
                ins: 0xC0,
                p1: 0,
                p2: 0,
                data: Vec::new(),
                le: Some(sw.sw2()),
            };
            let bytes = get.to_bytes()?;
            self.phase = Phase::GetResponse(rounds);
            return Ok(Next::Transmit(bytes));
        }
        if !sw.is_success() {
            return Err(Es10Error::Status {
                command: self.command,
                sw,
            });
        }
        self.current += 1;
        match self.blocks.get(self.current) {
            Some(next) => {
                let bytes = next.to_bytes()?;
                self.phase = Phase::Command;
                Ok(Next::Transmit(bytes))
            }
            None => Ok(Next::Done(std::mem::take(&mut self.data))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::StatusWord;

    const SW_OK: StatusWord = StatusWord::OK;

    fn link() -> Es10Link {
        Es10Link::new(1, 4).unwrap()
    }

    #[test]
    fn store_data_blocks_and_get_response() {
        let (mut ex, first) = Exchange::store_data(link(), &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(first, [0x81, 0xE2, 0x11, 0x00, 4, 1, 2, 3, 4]);
        let next = ex.handle_response(vec![0x90, 0x00]).unwrap();
        assert_eq!(next, Next::Transmit(vec![0x81, 0xE2, 0x91, 0x01, 2, 5, 6]));
        // 61 03: three more bytes.
        let next = ex.handle_response(vec![0xAA, 0x61, 0x03]).unwrap();
        assert_eq!(next, Next::Transmit(vec![0x81, 0xC0, 0, 0, 3]));
        let mut ok = vec![0xBB, 0xCC, 0xDD];
        ok.extend_from_slice(&SW_OK.0.to_be_bytes());
        assert_eq!(
            ex.handle_response(ok).unwrap(),
            Next::Done(vec![0xAA, 0xBB, 0xCC, 0xDD])
        );
    }

    #[test]
    fn wrong_le_is_repeated_once_and_errors_are_typed() {
        let select = CommandApdu {
            cla: 0x01,
            ins: 0xA4,
            p1: 4,
            p2: 0,
            data: vec![0xA0, 0, 0, 5, 0x59],
            le: Some(0),
        };
        let (mut ex, _) = Exchange::single("SELECT", link(), select).unwrap();
        assert_eq!(
            ex.handle_response(vec![0x6C, 0x10]).unwrap(),
            Next::Transmit(vec![0x01, 0xA4, 4, 0, 5, 0xA0, 0, 0, 5, 0x59, 0x10])
        );
        assert!(matches!(
            ex.handle_response(vec![0x6A, 0x82]),
            Err(Es10Error::Status {
                command: "SELECT",
                ..
            })
        ));
        let (mut ex, _) = Exchange::store_data(link(), &[1]).unwrap();
        assert!(matches!(
            ex.handle_response(vec![0x90]),
            Err(Es10Error::Transport(_))
        ));
        assert!(Exchange::store_data(link(), &[]).is_err());
        assert!(Exchange::store_data(link(), &[0; 4 * 257]).is_err());
        assert!(Es10Link::new(0, 0).is_err() && Es10Link::new(0, 256).is_err());
        assert!(Es10Link::new(20, 120).is_err());
    }

    #[test]
    fn endless_get_response_is_cut_off() {
        let (mut ex, _) = Exchange::store_data(link(), &[1]).unwrap();
        let mut rounds = 0;
        let e = loop {
            match ex.handle_response(vec![0x61, 0x01]) {
                Ok(Next::Transmit(_)) => rounds += 1,
                Ok(Next::Done(_)) => panic!("never done"),
                Err(e) => break e,
            }
        };
        assert_eq!(rounds, MAX_GET_RESPONSE_ROUNDS);
        assert!(matches!(
            e,
            Es10Error::Status {
                command: "GET RESPONSE",
                ..
            }
        ));
    }
}
