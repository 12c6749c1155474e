//! Logical channels and what each one carries: whether it is open, whether
//! the ISD-R is selected on it, the STORE DATA blocks of an ES10 command
//! being reassembled, and the rest of a response waiting for GET RESPONSE.
//!
//! Channel 0 (the basic channel) is always open; MANAGE CHANNEL opens and
//! closes channels 1 to 19.

use crate::apdu::StatusWord;

/// Logical channels a card may have (basic channel plus 19).
pub const MAX_CHANNELS: u8 = 20;
/// Largest ES10 command reassembled from STORE DATA blocks. A whole Bound
/// Profile Package in one command still fits; anything longer is refused
/// with `6A84`.
pub const MAX_COMMAND_LEN: usize = 256 * 1024;

/// One logical channel.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    /// Whether the ISD-R is the application selected on this channel.
    pub(crate) isd_r: bool,
    assembly: Option<Assembly>,
    pending: Option<Pending>,
}

/// An ES10 command arriving in STORE DATA blocks.
#[derive(Debug)]
struct Assembly {
    next_block: u16,
    data: Vec<u8>,
}

/// Response data not yet fetched with GET RESPONSE.
#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    offset: usize,
}

/// What a STORE DATA block did.
pub(crate) enum Block {
    /// More blocks are expected.
    More,
    /// The last block arrived: here is the whole command.
    Complete(Vec<u8>),
}

impl Channel {
    /// Adds one STORE DATA block (`p2` = block number) to the command being
    /// reassembled. A block out of sequence or a command too long discards
    /// the command.
    pub(crate) fn store_data_block(
        &mut self,
        block: u8,
        last: bool,
        data: &[u8],
    ) -> Result<Block, StatusWord> {
        if block == 0 {
            self.assembly = Some(Assembly {
                next_block: 0,
                data: Vec::with_capacity(if last { data.len() } else { 4 * 255 }),
            });
        }
        let Some(assembly) = self.assembly.as_mut() else {
            return Err(StatusWord::WRONG_P1_P2);
        };
        if assembly.next_block != u16::from(block) {
            self.assembly = None;
            return Err(StatusWord::WRONG_P1_P2);
        }
        if assembly.data.len() + data.len() > MAX_COMMAND_LEN {
            self.assembly = None;
            return Err(StatusWord::NOT_ENOUGH_MEMORY);
        }
        assembly.data.extend_from_slice(data);
        assembly.next_block += 1;
        if last {
            let done = self.assembly.take().map(|a| a.data).unwrap_or_default();
            Ok(Block::Complete(done))
        } else {
            Ok(Block::More)
        }
    }

    /// Drops a command being reassembled (another command interrupted it).
    pub(crate) fn abandon_assembly(&mut self) {
        self.assembly = None;
    }

    /// Answers with `data`, at most `ne` bytes now; the rest waits for GET
    /// RESPONSE and `61xx` says how much is left.
    pub(crate) fn respond(&mut self, data: Vec<u8>, ne: usize) -> Vec<u8> {
        self.pending = Some(Pending { data, offset: 0 });
        self.next_chunk(ne)
            .unwrap_or_else(|sw| crate::apdu::response(&[], sw))
    }

    /// GET RESPONSE: the next at most `ne` bytes of the pending response.
    /// Answers a command that produced `data`: with Le (`ne`), the data
    /// itself (in pieces of at most Ne, `61xx` announcing the rest); without
    /// Le, as a T=0 card does, only `61xx` announcing it, the data staying
    /// for GET RESPONSE. No data is plain `9000`.
    pub(crate) fn reply(&mut self, data: Vec<u8>, ne: Option<usize>) -> Vec<u8> {
        match ne {
            Some(ne) => self.respond(data, ne),
            None => self.announce(data),
        }
    }

    /// Keeps `data` for GET RESPONSE and answers `61xx` (or `9000` when empty).
    pub(crate) fn announce(&mut self, data: Vec<u8>) -> Vec<u8> {
        if data.is_empty() {
            self.pending = None;
            return crate::apdu::response(&[], StatusWord::OK);
        }
        let sw = StatusWord::more_data(data.len());
        self.pending = Some(Pending { data, offset: 0 });
        crate::apdu::response(&[], sw)
    }

    pub(crate) fn get_response(&mut self, ne: usize) -> Vec<u8> {
        self.next_chunk(ne)
            .unwrap_or_else(|sw| crate::apdu::response(&[], sw))
    }

    /// Forgets a pending response (any command but GET RESPONSE does).
    pub(crate) fn drop_pending(&mut self) {
        self.pending = None;
    }

    fn next_chunk(&mut self, ne: usize) -> Result<Vec<u8>, StatusWord> {
        let pending = self
            .pending
            .as_mut()
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        let rest = pending.data.get(pending.offset..).unwrap_or_default();
        let take = rest.len().min(ne.max(1));
        let left = rest.len() - take;
        let sw = if left == 0 {
            StatusWord::OK
        } else {
            StatusWord::more_data(left)
        };
        let out = crate::apdu::response(&rest[..take], sw);
        if left == 0 {
            self.pending = None;
        } else {
            pending.offset += take;
        }
        Ok(out)
    }
}

/// All logical channels of the card. Only open channels take memory: the
/// basic channel is always there, the others (1 to 19) are allocated when
/// MANAGE CHANNEL opens them and freed when it closes them.
#[derive(Debug)]
pub(crate) struct Channels {
    basic: Channel,
    /// The open channels other than the basic one, by number.
    others: Vec<(u8, Channel)>,
}

impl Channels {
    /// After power-on: only the basic channel is open, nothing selected.
    pub(crate) fn new() -> Self {
        Self {
            basic: Channel::default(),
            others: Vec::new(),
        }
    }

    /// The open channel `n`.
    pub(crate) fn get_mut(&mut self, n: u8) -> Option<&mut Channel> {
        if n == 0 {
            return Some(&mut self.basic);
        }
        self.others
            .iter_mut()
            .find(|(number, _)| *number == n)
            .map(|(_, channel)| channel)
    }

    fn is_open(&self, n: u8) -> bool {
        n == 0 || self.others.iter().any(|(number, _)| *number == n)
    }

    /// MANAGE CHANNEL open: `requested` 0 lets the card choose.
    pub(crate) fn open(&mut self, requested: u8) -> Result<u8, StatusWord> {
        let n = if requested == 0 {
            (1..MAX_CHANNELS)
                .find(|&n| !self.is_open(n))
                .ok_or(StatusWord::FUNCTION_NOT_SUPPORTED)?
        } else {
            requested
        };
        if n == 0 || n >= MAX_CHANNELS || self.is_open(n) {
            return Err(StatusWord::WRONG_P1_P2);
        }
        self.others.push((n, Channel::default()));
        Ok(n)
    }

    /// MANAGE CHANNEL close. The basic channel cannot be closed.
    pub(crate) fn close(&mut self, n: u8) -> Result<(), StatusWord> {
        if n == 0 {
            return Err(StatusWord::WRONG_P1_P2);
        }
        let at = self
            .others
            .iter()
            .position(|(number, _)| *number == n)
            .ok_or(StatusWord::CHANNEL_NOT_SUPPORTED)?;
        self.others.swap_remove(at);
        if self.others.is_empty() {
            // Give the memory back once only the basic channel is left.
            self.others = Vec::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_close_and_exhaustion() {
        let mut ch = Channels::new();
        assert!(ch.get_mut(0).is_some());
        assert!(ch.get_mut(1).is_none());
        for expected in 1..MAX_CHANNELS {
            assert_eq!(ch.open(0), Ok(expected));
        }
        assert_eq!(ch.open(0), Err(StatusWord::FUNCTION_NOT_SUPPORTED));
        assert_eq!(ch.close(3), Ok(()));
        assert_eq!(ch.close(3), Err(StatusWord::CHANNEL_NOT_SUPPORTED));
        assert_eq!(ch.close(0), Err(StatusWord::WRONG_P1_P2));
        assert_eq!(ch.open(3), Ok(3));
        assert_eq!(ch.open(3), Err(StatusWord::WRONG_P1_P2));
        assert_eq!(ch.open(20), Err(StatusWord::WRONG_P1_P2));
    }

    #[test]
    fn store_data_reassembly() {
        let mut c = Channel::default();
        assert!(matches!(
            c.store_data_block(0, false, &[1, 2]),
            Ok(Block::More)
        ));
        assert!(matches!(
            c.store_data_block(1, false, &[3]),
            Ok(Block::More)
        ));
        match c.store_data_block(2, true, &[4]) {
            Ok(Block::Complete(d)) => assert_eq!(d, [1, 2, 3, 4]),
            _ => panic!("expected a complete command"),
        }
        // Out of sequence.
        assert!(matches!(
            c.store_data_block(1, true, &[1]),
            Err(StatusWord::WRONG_P1_P2)
        ));
        assert!(matches!(
            c.store_data_block(0, false, &[1]),
            Ok(Block::More)
        ));
        assert!(matches!(
            c.store_data_block(2, true, &[1]),
            Err(StatusWord::WRONG_P1_P2)
        ));
        assert!(matches!(
            c.store_data_block(1, true, &[1]),
            Err(StatusWord::WRONG_P1_P2)
        ));
    }

    #[test]
    fn response_chaining() {
        let mut c = Channel::default();
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let first = c.respond(data.clone(), 256);
        assert_eq!(first.len(), 258);
        assert_eq!(&first[256..], &[0x61, 0x00]);
        let second = c.get_response(256);
        assert_eq!(&second[256..], &[0x61, 88]);
        let third = c.get_response(256);
        assert_eq!(third.len(), 90);
        assert_eq!(&third[88..], &[0x90, 0x00]);
        let mut all = first[..256].to_vec();
        all.extend_from_slice(&second[..256]);
        all.extend_from_slice(&third[..88]);
        assert_eq!(all, data);
        assert_eq!(c.get_response(256), vec![0x69, 0x85]);
        // Short answers fit at once.
        assert_eq!(c.respond(vec![1, 2], 256), vec![1, 2, 0x90, 0x00]);
        assert_eq!(c.get_response(256), vec![0x69, 0x85]);
    }
}
