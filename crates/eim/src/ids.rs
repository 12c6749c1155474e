//! The eIM's identifiers: its own id, counter values, eIM transaction ids,
//! and the EID, ICCID, ES9+ transaction id and time it shares with the other
//! crates (`ferrosim-ids`).

use std::fmt;
use std::str::FromStr;

use ferrosim_asn1::rasn::types::Integer;
use rand::CryptoRng;

pub use ferrosim_ids::{Eid, Iccid, Timestamp, TransactionId};

use crate::error::EimError;

/// The eIM identifier (`eimId`, SGP.32: a UTF8String of 1 to 128
/// characters; usually the eIM's FQDN or OID).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EimId(String);

impl EimId {
    /// Validates an eIM id.
    pub fn new(id: &str) -> Result<Self, EimError> {
        match id.chars().count() {
            1..=128 => Ok(Self(id.to_owned())),
            n => Err(EimError::InvalidEimId(n)),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EimId({})", self.0)
    }
}

/// The highest counter value an eUICC accepts: it answers a package with a
/// higher one `counterValueOutOfRange` (SGP.32 reports `0x7FFFFF` as the
/// upper bound).
pub const MAX_COUNTER: u32 = 0x7F_FFFF;

/// A `counterValue`: the replay protection of eUICC packages. The eIM uses
/// each value once per eUICC, strictly increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Counter(u32);

impl Counter {
    /// A counter value in `0..=MAX_COUNTER`.
    pub fn new(value: u64) -> Result<Self, EimError> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v <= MAX_COUNTER)
            .map(Self)
            .ok_or(EimError::CounterOutOfRange(value))
    }

    /// A counter value from its ASN.1 INTEGER.
    pub fn from_integer(value: &Integer) -> Result<Self, EimError> {
        let value =
            u64::try_from(value.clone()).map_err(|_| EimError::CounterOutOfRange(u64::MAX))?;
        Self::new(value)
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The next value, or [`EimError::CounterExhausted`] past
    /// [`MAX_COUNTER`].
    pub fn next(self) -> Result<Self, EimError> {
        if self.0 >= MAX_COUNTER {
            Err(EimError::CounterExhausted)
        } else {
            Ok(Self(self.0 + 1))
        }
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An `eimTransactionId` (SGP.22 TransactionId, 1 to 16 bytes). The eIM puts
/// a fresh random one on every item it delivers, and finds the device of a
/// result that carries no EID (every v1.0 result) by it.
///
/// As text (`Display`, `FromStr`, serde: the eIM API's views and the stored
/// records) it is lower-case hex of its 8 bytes; either case is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EimTransactionId([u8; Self::LEN]);

impl EimTransactionId {
    /// Length of the ids the eIM makes (of the 16 the protocol allows).
    pub const LEN: usize = 8;

    /// A fresh random id.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0; Self::LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// An id received back from a device; `None` unless it has the length
    /// of the ids this eIM makes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// As the ASN.1 `TransactionId` it travels in.
    pub fn to_asn1(self) -> ferrosim_asn1::rsp::TransactionId {
        ferrosim_asn1::rsp::TransactionId(ferrosim_asn1::rasn::types::OctetString::from_slice(
            &self.0,
        ))
    }
}

impl fmt::Display for EimTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for EimTransactionId {
    type Err = EimError;

    /// Reads the hex of an id this eIM made (16 hex digits).
    fn from_str(text: &str) -> Result<Self, EimError> {
        let invalid = || EimError::InvalidTransactionId(text.chars().take(64).collect());
        if text.len() != 2 * Self::LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut bytes = [0; Self::LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(Self(bytes))
    }
}

impl serde::Serialize for EimTransactionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EimTransactionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = EimTransactionId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an eIM transaction id: 16 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EimTransactionId, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

impl fmt::Debug for EimTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EimTransactionId({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn eim_transaction_ids_read_back_from_their_text_and_refuse_garbage() {
        let id = EimTransactionId([0x0A, 0x1B, 0x2C, 0x3D, 0x4E, 0x5F, 0x60, 0xFF]);
        assert_eq!(id.to_string(), "0a1b2c3d4e5f60ff");
        assert_eq!("0a1b2c3d4e5f60ff".parse::<EimTransactionId>().unwrap(), id);
        assert_eq!("0A1B2C3D4E5F60FF".parse::<EimTransactionId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0a1b2c3d4e5f60ff\"");
        assert_eq!(
            serde_json::from_str::<EimTransactionId>("\"0a1b2c3d4e5f60ff\"").unwrap(),
            id
        );
        for bad in [
            "",
            "0a",
            "0a1b2c3d4e5f60f",
            "0a1b2c3d4e5f60ff00",
            "0a1b2c3d4e5f60fg",
            "+a1b2c3d4e5f60ff",
            "ü0a1b2c3d4e5f60",
            "0a1b2c3d 4e5f60f",
        ] {
            assert!(
                matches!(
                    bad.parse::<EimTransactionId>(),
                    Err(EimError::InvalidTransactionId(_))
                ),
                "{bad:?}"
            );
            assert!(serde_json::from_str::<EimTransactionId>(&format!("{bad:?}")).is_err());
        }
        assert!(serde_json::from_str::<EimTransactionId>("42").is_err());
    }
}
