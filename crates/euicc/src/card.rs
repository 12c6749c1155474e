//! [`VirtualEuicc`]: the card as a reader sees it. One command APDU in, one
//! response APDU out; the ISO/IEC 7816-4 commands (MANAGE CHANNEL, SELECT,
//! GET RESPONSE) are handled here, STORE DATA is reassembled here and its
//! ES10 command handed to the ISD-R ([`crate::es10`]).

use ferrosim_ids::Timestamp;

use rand::CryptoRng;
use tracing::trace;

use crate::apdu::{Cla, CommandApdu, StatusWord, response};
use crate::channels::{Block, Channels};
use crate::es10::{Es10Reply, Isdr};
use crate::identity::EuiccIdentity;
use crate::state::{EuiccState, StoredNotification};

/// AID of the ISD-R (SGP.02/SGP.22).
pub const ISD_R_AID: [u8; 16] = [
    0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x00, 0x00, 0x01, 0x00,
];

/// The Answer To Reset, shaped like a real eUICC's: T=0 is the only
/// transmission protocol offered, and T=15 carries the global interface
/// byte TA (clock stop: no preference; classes A, B and C), so PC/SC stacks
/// negotiate T=0 for every program, whichever protocols it accepts.
///
/// ```text
/// 3B            TS   direct convention
/// 87            T0   TD1 follows; 7 historical bytes
/// 80            TD1  TD2 follows; T=0
/// 1F            TD2  TA3 follows; T=15 (global interface bytes)
/// C7            TA3  clock stop no preference; classes A, B, C
/// 80 31 E0 73 FE 21 1F   historical: category 80; card service data E0
///                        (selection by full and partial DF name);
///                        card capabilities FE 21 1F (all selection methods,
///                        logical channels assigned by the card, 8 or more)
/// 3D            TCK  (present because T=15 is indicated)
/// ```
pub const ATR: [u8; 13] = [
    0x3B, 0x87, 0x80, 0x1F, 0xC7, 0x80, 0x31, 0xE0, 0x73, 0xFE, 0x21, 0x1F, TCK,
];

/// The ATR's check byte: XOR of T0 up to the last historical byte.
const TCK: u8 = 0x87 ^ 0x80 ^ 0x1F ^ 0xC7 ^ 0x80 ^ 0x31 ^ 0xE0 ^ 0x73 ^ 0xFE ^ 0x21 ^ 0x1F;

const INS_MANAGE_CHANNEL: u8 = 0x70;
const INS_SELECT: u8 = 0xA4;
const INS_GET_RESPONSE: u8 = 0xC0;
const INS_STORE_DATA: u8 = 0xE2;
const INS_TERMINAL_CAPABILITY: u8 = 0xAA;

/// A virtual eUICC: an ISD-R answering SGP.22 ES10a/b/c over APDUs.
///
/// Sans-IO: time and randomness come with each command
/// ([`VirtualEuicc::handle_apdu_with_rng`]; [`VirtualEuicc::handle_apdu`]
/// uses the operating system's generator), and persistence is the caller's
/// job (save [`VirtualEuicc::state`] when [`VirtualEuicc::state_revision`]
/// changed).
#[derive(Debug)]
pub struct VirtualEuicc {
    channels: Channels,
    isdr: Isdr,
}

impl VirtualEuicc {
    /// A powered-on card with this identity and state.
    pub fn new(identity: EuiccIdentity, state: EuiccState) -> Self {
        Self {
            channels: Channels::new(),
            isdr: Isdr::new(identity, state),
        }
    }

    /// One command APDU in, the response APDU (`data || SW1 SW2`) out.
    /// Never panics on any input: malformed commands get an error status word.
    /// Challenges and one-time keys come from the operating system's
    /// generator (through `rand`'s thread-local generator, seeded by it).
    /// `now` is a [`Timestamp`] (a `SystemTime` converts too): what
    /// certificate validity is checked against and installation times record.
    pub fn handle_apdu(&mut self, command: &[u8], now: impl Into<Timestamp>) -> Vec<u8> {
        self.handle_apdu_with_rng(command, now, &mut rand::rng())
    }

    /// [`VirtualEuicc::handle_apdu`] with the random generator given: the
    /// eUICC challenge and the one-time key pair (otSK/otPK.EUICC.ECKA) of
    /// PrepareDownload are drawn from `rng`, so a seeded generator replays a
    /// session. The eUICC's ECDSA signatures are not drawn from it (aws-lc
    /// signs with its own randomness) and differ on every run.
    pub fn handle_apdu_with_rng(
        &mut self,
        command: &[u8],
        now: impl Into<Timestamp>,
        rng: &mut dyn CryptoRng,
    ) -> Vec<u8> {
        let out = self.dispatch(command, now.into(), rng);
        trace!(
            command_len = command.len(),
            response_len = out.len(),
            sw = ?out.get(out.len().saturating_sub(2)..),
            "APDU"
        );
        out
    }

    /// Power cycle or reset: closes the logical channels, deselects the
    /// ISD-R and drops the RSP session (a download in progress is lost);
    /// installed profiles and notifications stay.
    pub fn reset(&mut self) {
        self.channels = Channels::new();
        self.isdr.reset();
    }

    /// The Answer To Reset.
    pub fn atr(&self) -> &'static [u8] {
        &ATR
    }

    /// The persistent state (profiles, notifications, addresses), to save.
    pub fn state(&self) -> &EuiccState {
        self.isdr.state()
    }

    /// A counter that grows whenever the persistent state changes, so the
    /// caller knows when to save it.
    pub fn state_revision(&self) -> u64 {
        self.isdr.revision()
    }

    /// The identity of this eUICC.
    pub fn identity(&self) -> &EuiccIdentity {
        self.isdr.identity()
    }

    /// A stored notification as the card hands it out (the
    /// `PendingNotification` RetrieveNotificationsList returns): an
    /// installation result as stored, another notification with the card's
    /// certificates appended.
    pub fn pending_notification(&self, notification: &StoredNotification) -> Vec<u8> {
        crate::es10::pending_notification(self.isdr.identity(), notification)
    }

    fn dispatch(&mut self, command: &[u8], now: Timestamp, rng: &mut dyn CryptoRng) -> Vec<u8> {
        let apdu = match CommandApdu::parse(command) {
            Ok(a) => a,
            Err(sw) => return response(&[], sw),
        };
        let cla = match Cla::parse(apdu.cla) {
            Ok(c) => c,
            Err(sw) => return response(&[], sw),
        };
        let Some(channel) = self.channels.get_mut(cla.channel) else {
            return response(&[], StatusWord::CHANNEL_NOT_SUPPORTED);
        };
        if apdu.ins != INS_GET_RESPONSE {
            channel.drop_pending();
        }
        if cla.secure_messaging {
            return response(&[], StatusWord::SECURE_MESSAGING_NOT_SUPPORTED);
        }
        if cla.chaining {
            return response(&[], StatusWord::CHAINING_NOT_SUPPORTED);
        }
        match apdu.ins {
            INS_MANAGE_CHANNEL => self.manage_channel(cla.channel, &apdu),
            INS_SELECT => self.select(cla.channel, &apdu),
            INS_GET_RESPONSE => self.get_response(cla.channel, &apdu),
            INS_STORE_DATA if !cla.proprietary => response(&[], StatusWord::CLA_NOT_SUPPORTED),
            INS_STORE_DATA => self.store_data(cla.channel, &apdu, now, rng),
            INS_TERMINAL_CAPABILITY if cla.proprietary => terminal_capability(&apdu),
            _ => response(&[], StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// MANAGE CHANNEL (ISO/IEC 7816-4 11.1.2): P1 `00` open (P2 `00`: the
    /// card picks the number and returns it), P1 `80` close (P2 the channel,
    /// `00` the one the command came on).
    fn manage_channel(&mut self, on: u8, apdu: &CommandApdu<'_>) -> Vec<u8> {
        if !apdu.data.is_empty() {
            return response(&[], StatusWord::WRONG_LENGTH);
        }
        match apdu.p1 {
            0x00 => match self.channels.open(apdu.p2) {
                Ok(n) if apdu.p2 == 0 => match apdu.ne {
                    Some(_) => response(&[n], StatusWord::OK),
                    // T=0: the channel number is fetched with GET RESPONSE
                    // on the channel the command came on.
                    None => match self.channels.get_mut(on) {
                        Some(channel) => channel.announce(vec![n]),
                        None => response(&[], StatusWord::CHANNEL_NOT_SUPPORTED),
                    },
                },
                Ok(_) => response(&[], StatusWord::OK),
                Err(sw) => response(&[], sw),
            },
            0x80 => {
                let target = if apdu.p2 == 0 { on } else { apdu.p2 };
                match self.channels.close(target) {
                    Ok(()) => response(&[], StatusWord::OK),
                    Err(sw) => response(&[], sw),
                }
            }
            _ => response(&[], StatusWord::WRONG_P1_P2),
        }
    }

    /// SELECT by DF name (P1 `04`): the ISD-R AID (or a prefix of at least
    /// 5 bytes of it) selects the ISD-R on this channel. This card has no
    /// file system: selection by file identifier or path finds nothing.
    fn select(&mut self, on: u8, apdu: &CommandApdu<'_>) -> Vec<u8> {
        let Some(channel) = self.channels.get_mut(on) else {
            return response(&[], StatusWord::CHANNEL_NOT_SUPPORTED);
        };
        channel.abandon_assembly();
        match apdu.p1 {
            0x04 => {}
            0x00..=0x03 | 0x08 | 0x09 => return response(&[], StatusWord::NOT_FOUND),
            _ => return response(&[], StatusWord::WRONG_P1_P2),
        }
        // Only "first or only occurrence" with FCI, FCP, FMD or no data.
        if !matches!(apdu.p2, 0x00 | 0x04 | 0x08 | 0x0C) {
            return response(&[], StatusWord::WRONG_P1_P2);
        }
        if !(5..=16).contains(&apdu.data.len()) {
            return response(&[], StatusWord::WRONG_LENGTH);
        }
        if !ISD_R_AID.starts_with(apdu.data) {
            return response(&[], StatusWord::NOT_FOUND);
        }
        channel.isd_r = true;
        if apdu.p2 & 0x0C == 0x0C {
            return response(&[], StatusWord::OK);
        }
        channel.reply(select_response(), apdu.ne)
    }

    /// GET RESPONSE: the next part of a response announced with `61xx`.
    fn get_response(&mut self, on: u8, apdu: &CommandApdu<'_>) -> Vec<u8> {
        let Some(channel) = self.channels.get_mut(on) else {
            return response(&[], StatusWord::CHANNEL_NOT_SUPPORTED);
        };
        if apdu.p1 != 0 || apdu.p2 != 0 {
            channel.drop_pending();
            return response(&[], StatusWord::WRONG_P1_P2);
        }
        if !apdu.data.is_empty() {
            channel.drop_pending();
            return response(&[], StatusWord::WRONG_LENGTH);
        }
        channel.get_response(apdu.ne.unwrap_or(256))
    }

    /// STORE DATA (GlobalPlatform 11.11): P1 `11` more blocks follow, `91`
    /// last block (BER-TLV, no encryption), P2 the block number from `00`.
    /// The last block hands the whole ES10 command to the ISD-R.
    fn store_data(
        &mut self,
        on: u8,
        apdu: &CommandApdu<'_>,
        now: Timestamp,
        rng: &mut dyn CryptoRng,
    ) -> Vec<u8> {
        let Some(channel) = self.channels.get_mut(on) else {
            return response(&[], StatusWord::CHANNEL_NOT_SUPPORTED);
        };
        if !channel.isd_r {
            return response(&[], StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if apdu.p1 & 0x60 != 0 || apdu.p1 & 0x18 != 0x10 {
            channel.abandon_assembly();
            return response(&[], StatusWord::WRONG_P1_P2);
        }
        if apdu.data.is_empty() {
            channel.abandon_assembly();
            return response(&[], StatusWord::WRONG_LENGTH);
        }
        let last = apdu.p1 & 0x80 != 0;
        let command = match channel.store_data_block(apdu.p2, last, apdu.data) {
            Ok(Block::More) => return response(&[], StatusWord::OK),
            Ok(Block::Complete(command)) => command,
            Err(sw) => return response(&[], sw),
        };
        let reply = self.isdr.handle(&command, now, rng);
        let Some(channel) = self.channels.get_mut(on) else {
            return response(&[], StatusWord::CHANNEL_NOT_SUPPORTED);
        };
        match reply {
            Es10Reply::Data(data) => channel.reply(data, apdu.ne),
            Es10Reply::Empty => response(&[], StatusWord::OK),
            Es10Reply::Status(sw) => response(&[], sw),
        }
    }
}

/// TERMINAL CAPABILITY (ETSI TS 102 221 11.1.19): the terminal tells the
/// card what it supports in a template `A9`. IoT device software sends it
/// before anything else; this card has nothing to adapt and accepts any
/// well-formed template.
fn terminal_capability(apdu: &CommandApdu<'_>) -> Vec<u8> {
    if apdu.p1 != 0 || apdu.p2 != 0 {
        return response(&[], StatusWord::WRONG_P1_P2);
    }
    if apdu.data.is_empty() {
        return response(&[], StatusWord::WRONG_LENGTH);
    }
    match ferrosim_asn1::tlv::Tlv::parse_tagged(apdu.data, 0xA9) {
        Ok(_) => response(&[], StatusWord::OK),
        Err(_) => response(&[], StatusWord::WRONG_DATA),
    }
}

/// The FCI returned when the ISD-R is selected: its AID and, in the
/// proprietary template, the ISD-R template (`E0`, SVN) and the largest
/// command data field (`9F65`).
fn select_response() -> Vec<u8> {
    use ferrosim_asn1::tlv::tlv;
    let isdr_template = tlv(0xE0, &tlv(0x82, &crate::es10::SVN));
    let proprietary = [isdr_template, tlv(0x9F65, &[0xFF])].concat();
    tlv(
        0x6F,
        &[tlv(0x84, &ISD_R_AID), tlv(0xA5, &proprietary)].concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The card moves between threads (one task per reader connection).
    #[test]
    fn the_card_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<VirtualEuicc>();
        send_sync::<EuiccState>();
        send_sync::<EuiccIdentity>();
    }

    #[test]
    fn atr_checksum_and_protocols() {
        // TCK: XOR of T0..TCK is zero.
        assert_eq!(ATR[1..].iter().fold(0u8, |acc, b| acc ^ b), 0);
        // Walk the interface bytes: the protocols indicated are T=0 and
        // T=15 (global bytes), never T=1.
        let mut protocols = Vec::new();
        let mut y = ATR[1] >> 4;
        let mut i = 2;
        loop {
            let present = (y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1);
            i += usize::from(present);
            if y & 0x8 == 0 {
                break;
            }
            let td = ATR[i];
            protocols.push(td & 0x0F);
            y = td >> 4;
            i += 1;
        }
        assert_eq!(protocols, [0, 15]);
        assert_eq!(ATR.len(), i + usize::from(ATR[1] & 0x0F) + 1);
    }

    #[test]
    fn select_response_is_well_formed() {
        let fci = select_response();
        let t = ferrosim_asn1::tlv::Tlv::parse_tagged(&fci, 0x6F).unwrap();
        assert_eq!(t.require(0x84).unwrap().value, &ISD_R_AID);
        let a5 = t.require(0xA5).unwrap();
        assert_eq!(
            a5.require(0xE0).unwrap().require(0x82).unwrap().value.len(),
            3
        );
    }
}
