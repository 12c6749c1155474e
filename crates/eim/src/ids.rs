//! The eIM's identifiers: its own id, counter values, eIM transaction ids,
//! and the EID, ICCID and time it shares with the other crates
//! (`ferrosim-ids`).

use std::fmt;

use ferrosim_asn1::rasn::types::Integer;
use rand::CryptoRng;

pub use ferrosim_ids::{Eid, Iccid, Timestamp};

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

impl fmt::Debug for EimTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EimTransactionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}
