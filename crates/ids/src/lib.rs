//! Identifiers and time for every ferrosim crate, as validating newtypes.
//!
//! Each type checks its value once, on construction (as rustls does with
//! `ServerName`), so code that holds one can rely on it: an [`Eid`] has
//! correct check digits, an [`Iccid`] a correct Luhn digit, a
//! [`TransactionId`] 1 to 16 bytes. Bad input gets an [`IdError`] naming what
//! is wrong with which value; nothing here panics on input.
//!
//! Values whose size is bounded are stored inline (fixed arrays, no heap), so
//! a million devices or orders stay small and cloning is a copy of a few
//! bytes.
//!
//! - [`Eid`], [`EidPrefix`]: the eUICC identifier (GSMA SGP.29) and EID ranges.
//! - [`Iccid`], [`luhn_digit`], [`bcd`]: the profile's ICCID (ITU-T E.118) and
//!   its two BCD codings.
//! - [`Imsi`]: the subscriber identity (3GPP TS 23.003) and EF.IMSI coding.
//! - [`MatchingId`], [`TransactionId`], [`OperatorId`]: identifiers of the
//!   SGP.22 download and ES2+ protocols.
//! - [`CiKeyId`]: a CI's key identifier (what eUICCs list in `euiccCiPKIdList`).
//! - [`Timestamp`], [`Clock`], [`SystemClock`], [`ManualClock`]: time as
//!   sans-IO cores receive it, from the system or from a test or simulator.
//!
//! The crate does no I/O; only [`SystemClock`] reads the system time.
#![forbid(unsafe_code)]

/// Implements serde for a type as its `Display` text, parsed back with `FromStr`.
macro_rules! serde_as_text {
    ($ty:ty, $what:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
    };
}

mod ascii;
mod eid;
mod error;
mod iccid;
mod imsi;
mod key_id;
mod rsp;
mod time;

pub use eid::{EID_DIGITS, Eid, EidPrefix};
pub use error::IdError;
pub use iccid::{Iccid, bcd, luhn_digit};
pub use imsi::Imsi;
pub use key_id::{CI_KEY_ID_MAX_LEN, CiKeyId};
pub use rsp::{MatchingId, OperatorId, TransactionId};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
