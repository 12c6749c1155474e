//! ISO/IEC 7816-4 framing: command APDUs in, status words out.
//!
//! [`CommandApdu::parse`] splits a command into header, data and expected
//! response length, short or extended, and refuses anything that is not one
//! of the four ISO cases with `6700`. [`Cla`] reads the class byte: logical
//! channel (0..=19), secure messaging and command chaining indications, and
//! whether the class is proprietary (GlobalPlatform, needed by STORE DATA).
//! [`StatusWord`] names the status words this card answers with.
//!
//! This room knows nothing about the ISD-R or SGP.22: it only frames bytes.

use std::fmt;

/// A two-byte status word (SW1 SW2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// `9000`: normal processing.
    pub const OK: Self = Self(0x9000);
    /// `6700`: wrong length (Lc/Le inconsistent with the command).
    pub const WRONG_LENGTH: Self = Self(0x6700);
    /// `6881`: logical channel not supported (or not open).
    pub const CHANNEL_NOT_SUPPORTED: Self = Self(0x6881);
    /// `6882`: secure messaging not supported.
    pub const SECURE_MESSAGING_NOT_SUPPORTED: Self = Self(0x6882);
    /// `6884`: command chaining not supported.
    pub const CHAINING_NOT_SUPPORTED: Self = Self(0x6884);
    /// `6985`: conditions of use not satisfied (no ISD-R selected, no
    /// pending response, no download session).
    pub const CONDITIONS_NOT_SATISFIED: Self = Self(0x6985);
    /// `6A80`: incorrect parameters in the data field (malformed ES10 command).
    pub const WRONG_DATA: Self = Self(0x6A80);
    /// `6A81`: function not supported (no free logical channel).
    pub const FUNCTION_NOT_SUPPORTED: Self = Self(0x6A81);
    /// `6A82`: file or application not found.
    pub const NOT_FOUND: Self = Self(0x6A82);
    /// `6A84`: not enough memory space (an ES10 command too long).
    pub const NOT_ENOUGH_MEMORY: Self = Self(0x6A84);
    /// `6A86`: incorrect parameters P1-P2 (also a STORE DATA block out of sequence).
    pub const WRONG_P1_P2: Self = Self(0x6A86);
    /// `6A88`: referenced data not found (an ES10 command tag this card does not know).
    pub const DATA_NOT_FOUND: Self = Self(0x6A88);
    /// `6D00`: instruction code not supported.
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    /// `6E00`: class not supported.
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);

    /// `61xx`: more response data; `remaining` bytes (`00` meaning 256 or more).
    pub fn more_data(remaining: usize) -> Self {
        Self(
            0x6100
                | if remaining >= 256 {
                    0
                } else {
                    remaining as u16
                },
        )
    }

    /// The two bytes SW1 SW2.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// Whether this is `9000` or a `61xx`.
    pub fn is_success(self) -> bool {
        self == Self::OK || self.0 >> 8 == 0x61
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// A parsed command APDU, borrowing its data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandApdu<'a> {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (empty when Lc is absent).
    pub data: &'a [u8],
    /// Maximum response length Ne, when Le is present (`00` = 256, or
    /// 65536 in extended form).
    pub ne: Option<usize>,
    /// Whether Lc/Le used the extended (3-byte / 2-byte) form.
    pub extended: bool,
}

impl<'a> CommandApdu<'a> {
    /// Parses one command APDU (ISO/IEC 7816-4 cases 1, 2, 3 and 4, short
    /// and extended). Anything else is refused with `6700`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, StatusWord> {
        let (header, body) = bytes
            .split_first_chunk::<4>()
            .ok_or(StatusWord::WRONG_LENGTH)?;
        let [cla, ins, p1, p2] = *header;
        let mut apdu = CommandApdu {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            ne: None,
            extended: false,
        };
        match body {
            [] => {}
            [le] => apdu.ne = Some(short_ne(*le)),
            [0, rest @ ..] if rest.len() >= 2 => {
                apdu.extended = true;
                let lc = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let after = &rest[2..];
                if lc == 0 {
                    // Case 2E: 00 Le1 Le2.
                    if !after.is_empty() {
                        return Err(StatusWord::WRONG_LENGTH);
                    }
                    apdu.ne = Some(extended_ne(rest[0], rest[1]));
                } else if after.len() == lc {
                    apdu.data = after;
                } else if after.len() == lc + 2 {
                    apdu.data = &after[..lc];
                    apdu.ne = Some(extended_ne(after[lc], after[lc + 1]));
                } else {
                    return Err(StatusWord::WRONG_LENGTH);
                }
            }
            [lc, rest @ ..] if *lc != 0 => {
                let lc = usize::from(*lc);
                if rest.len() == lc {
                    apdu.data = rest;
                } else if rest.len() == lc + 1 {
                    apdu.data = &rest[..lc];
                    apdu.ne = Some(short_ne(rest[lc]));
                } else {
                    return Err(StatusWord::WRONG_LENGTH);
                }
            }
            _ => return Err(StatusWord::WRONG_LENGTH),
        }
        Ok(apdu)
    }
}

fn short_ne(le: u8) -> usize {
    if le == 0 { 256 } else { usize::from(le) }
}

fn extended_ne(hi: u8, lo: u8) -> usize {
    match u16::from_be_bytes([hi, lo]) {
        0 => 65_536,
        n => usize::from(n),
    }
}

/// What the class byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cla {
    /// Logical channel number (0..=19).
    pub channel: u8,
    /// Secure messaging indicated.
    pub secure_messaging: bool,
    /// Command chaining indicated (not the last command of a chain).
    pub chaining: bool,
    /// Proprietary class (b8 set): GlobalPlatform commands such as STORE DATA.
    pub proprietary: bool,
}

impl Cla {
    /// Reads a class byte; classes ISO/IEC 7816-4 reserves give `6E00`.
    pub fn parse(cla: u8) -> Result<Self, StatusWord> {
        let proprietary = cla & 0x80 != 0;
        match cla & 0x7F {
            // First interindustry coding (and its proprietary twin 80..9F).
            0x00..=0x1F => Ok(Cla {
                channel: cla & 0x03,
                secure_messaging: cla & 0x0C != 0,
                chaining: cla & 0x10 != 0,
                proprietary,
            }),
            // Further interindustry coding: channels 4..=19.
            0x40..=0x7F if cla != 0xFF => Ok(Cla {
                channel: 4 + (cla & 0x0F),
                secure_messaging: cla & 0x20 != 0,
                chaining: cla & 0x10 != 0,
                proprietary,
            }),
            _ => Err(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    /// The class byte for `channel` (no secure messaging, no chaining),
    /// interindustry or proprietary.
    pub fn encode(channel: u8, proprietary: bool) -> u8 {
        let base = if channel < 4 {
            channel
        } else {
            0x40 | ((channel - 4) & 0x0F)
        };
        if proprietary { base | 0x80 } else { base }
    }
}

/// A response APDU: `data || SW1 SW2`.
pub fn response(data: &[u8], sw: StatusWord) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(&sw.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_cases_short_and_extended() {
        let c1 = CommandApdu::parse(&[0x00, 0x70, 0x80, 0x01]).unwrap();
        assert_eq!((c1.data, c1.ne), (&[][..], None));
        let c2 = CommandApdu::parse(&[0x00, 0x70, 0x00, 0x00, 0x01]).unwrap();
        assert_eq!(c2.ne, Some(1));
        let c2_256 = CommandApdu::parse(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(c2_256.ne, Some(256));
        let c3 = CommandApdu::parse(&[0x80, 0xE2, 0x91, 0x00, 0x02, 0xAB, 0xCD]).unwrap();
        assert_eq!((c3.data, c3.ne), (&[0xAB, 0xCD][..], None));
        let c4 = CommandApdu::parse(&[0x80, 0xE2, 0x91, 0x00, 0x01, 0xAB, 0x00]).unwrap();
        assert_eq!((c4.data, c4.ne), (&[0xAB][..], Some(256)));
        let e2 = CommandApdu::parse(&[0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!((e2.ne, e2.extended), (Some(65_536), true));
        let e3 = CommandApdu::parse(&[0x80, 0xE2, 0x91, 0x00, 0x00, 0x00, 0x01, 0xAB]).unwrap();
        assert_eq!((e3.data, e3.ne), (&[0xAB][..], None));
        let e4 = CommandApdu::parse(&[0x80, 0xE2, 0x91, 0x00, 0x00, 0x00, 0x01, 0xAB, 0x01, 0x00])
            .unwrap();
        assert_eq!((e4.data, e4.ne), (&[0xAB][..], Some(256)));
    }

    #[test]
    fn inconsistent_lengths_are_6700() {
        for bad in [
            &[][..],
            &[0x00, 0xA4, 0x04],
            &[0x00, 0xA4, 0x04, 0x00, 0x05, 0x01],
            &[0x00, 0xA4, 0x04, 0x00, 0x01, 0x01, 0x00, 0x00],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x02, 0x01],
        ] {
            assert_eq!(
                CommandApdu::parse(bad),
                Err(StatusWord::WRONG_LENGTH),
                "{bad:02X?}"
            );
        }
    }

    #[test]
    fn class_bytes() {
        let c = Cla::parse(0x81).unwrap();
        assert_eq!(
            (c.channel, c.proprietary, c.secure_messaging),
            (1, true, false)
        );
        let c = Cla::parse(0xC5).unwrap();
        assert_eq!((c.channel, c.proprietary), (9, true));
        assert!(Cla::parse(0x84).unwrap().secure_messaging);
        assert!(Cla::parse(0x10).unwrap().chaining);
        assert!(Cla::parse(0x60).unwrap().secure_messaging);
        for bad in [0x20, 0x3F, 0xA0, 0xBF, 0xFF] {
            assert_eq!(Cla::parse(bad), Err(StatusWord::CLA_NOT_SUPPORTED));
        }
        for channel in 0..20 {
            for proprietary in [false, true] {
                let c = Cla::parse(Cla::encode(channel, proprietary)).unwrap();
                assert_eq!((c.channel, c.proprietary), (channel, proprietary));
            }
        }
    }

    #[test]
    fn more_data_status() {
        assert_eq!(StatusWord::more_data(5), StatusWord(0x6105));
        assert_eq!(StatusWord::more_data(256), StatusWord(0x6100));
        assert_eq!(StatusWord::more_data(4000), StatusWord(0x6100));
        assert!(StatusWord(0x6110).is_success());
        assert!(!StatusWord::WRONG_DATA.is_success());
    }
}
