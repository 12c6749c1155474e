//! The ES10 functions the IPA runs on the eUICC beyond those of the LPA's
//! machines: the requests it sends with STORE DATA and the checks on what
//! comes back. Answers that travel on to the eIM are kept as received.

use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_ids::Eid;
use ferrosim_lpa::Es10Error;

/// An ES10 command of the IPA and the answer it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// ES10c GetEID (`BF3E` with tag list `5A`).
    GetEid,
    /// ES10b LoadEuiccPackage (`BF51`, the package as the eIM signed it).
    LoadEuiccPackage,
    /// ES10b GetEUICCInfo (EUICCInfo1, `BF20`).
    GetEuiccInfo1,
    /// ES10b GetEUICCInfo (EUICCInfo2, `BF22`).
    GetEuiccInfo2,
    /// ES10b GetCerts (`BF56`).
    GetCerts,
    /// ES10a GetEuiccConfiguredAddresses (`BF3C`).
    ConfiguredAddresses,
    /// ES10b RetrieveNotificationsList of every notification (`BF2B`).
    RetrieveNotifications,
    /// ES10b RemoveNotificationFromList (`BF30`) of an acknowledged result.
    RemoveResult,
}

impl Command {
    /// The SGP.22/SGP.32 name, for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetEid => "GetEID",
            Self::LoadEuiccPackage => "LoadEuiccPackage",
            Self::GetEuiccInfo1 => "GetEUICCInfo1",
            Self::GetEuiccInfo2 => "GetEUICCInfo2",
            Self::GetCerts => "GetCerts",
            Self::ConfiguredAddresses => "GetEuiccConfiguredAddresses",
            Self::RetrieveNotifications => "RetrieveNotificationsList",
            Self::RemoveResult => "RemoveNotificationFromList",
        }
    }

    /// The tag of the answer.
    pub fn answer_tag(self) -> u32 {
        match self {
            Self::GetEid => 0xBF3E,
            Self::LoadEuiccPackage => 0xBF51,
            Self::GetEuiccInfo1 => 0xBF20,
            Self::GetEuiccInfo2 => 0xBF22,
            Self::GetCerts => 0xBF56,
            Self::ConfiguredAddresses => 0xBF3C,
            Self::RetrieveNotifications => 0xBF2B,
            Self::RemoveResult => 0xBF30,
        }
    }

    /// The request of a command without arguments.
    pub fn request(self) -> Vec<u8> {
        match self {
            Self::GetEid => tlv(0xBF3E, &tlv(0x5C, &[0x5A])),
            Self::GetEuiccInfo1 => tlv(0xBF20, &[]),
            Self::GetEuiccInfo2 => tlv(0xBF22, &[]),
            Self::GetCerts => tlv(0xBF56, &[]),
            Self::ConfiguredAddresses => tlv(0xBF3C, &[]),
            Self::RetrieveNotifications => tlv(0xBF2B, &[]),
            // These carry arguments: see `load_euicc_package` and `remove`.
            Self::LoadEuiccPackage | Self::RemoveResult => Vec::new(),
        }
    }

    /// Checks that `answer` is one element of the expected tag; returns it.
    pub fn check(self, answer: Vec<u8>) -> Result<Vec<u8>, Es10Error> {
        match Tlv::parse_exact(&answer) {
            Ok(t) if t.tag == self.answer_tag() => Ok(answer),
            Ok(t) => Err(bad(self, format!("answer {:X}", t.tag))),
            Err(e) => Err(bad(self, e.to_string())),
        }
    }
}

fn bad(command: Command, reason: String) -> Es10Error {
    Es10Error::BadResponse {
        function: command.name(),
        reason,
    }
}

/// RemoveNotificationFromList of `seq_number`.
pub fn remove(seq_number: i64) -> Vec<u8> {
    tlv(0xBF30, &tlv(0x80, &integer_bytes(seq_number)))
}

/// The EID in a GetEID answer.
pub fn eid_of(answer: &[u8]) -> Result<Eid, Es10Error> {
    let top = Tlv::parse_tagged(answer, 0xBF3E).map_err(|e| bad(Command::GetEid, e.to_string()))?;
    let eid = top
        .require(0x5A)
        .map_err(|e| bad(Command::GetEid, e.to_string()))?;
    Eid::from_bcd(eid.value).map_err(|e| bad(Command::GetEid, e.to_string()))
}

/// Minimal two's-complement big-endian bytes of an INTEGER.
pub fn integer_bytes(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn integers_are_minimal() {
        assert_eq!(integer_bytes(0), [0]);
        assert_eq!(integer_bytes(127), [0x7F]);
        assert_eq!(integer_bytes(128), [0, 0x80]);
        assert_eq!(integer_bytes(0x1234), [0x12, 0x34]);
        assert_eq!(integer_bytes(-1), [0xFF]);
    }

    #[test]
    fn answers_are_checked() {
        let eid = Eid::parse("89049032123451234512345678901235").unwrap();
        let answer = tlv(0xBF3E, &tlv(0x5A, &eid.to_bcd()));
        assert_eq!(eid_of(&answer).unwrap(), eid);
        assert!(eid_of(&tlv(0xBF3E, &tlv(0x5A, &[1, 2]))).is_err());
        assert!(eid_of(b"\xBF\x3E").is_err());
        assert!(Command::GetEuiccInfo2.check(tlv(0xBF20, &[])).is_err());
        assert!(
            Command::GetEuiccInfo2
                .check(vec![0xBF, 0x22, 0x05])
                .is_err()
        );
        assert!(Command::GetEuiccInfo2.check(tlv(0xBF22, &[])).is_ok());
    }
}
