//! Object identifiers as RSP uses them for SM-DP+, CI and EUM identities
//! (subjectAltName registeredID).
//!
//! `const-oid`, which the X.509 types use, only represents OIDs whose second
//! arc is below 40. The GSMA test OIDs are under the `2.999` example arc
//! (SGP.26's SM-DP+ is `2.999.10`), so identities get this small type that
//! handles any arc up to 64 bits. Policy OIDs (2.23.146...) stay `const-oid`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// An object identifier of any shape, kept as its DER content octets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(Vec<u8>);

impl Oid {
    /// Parses the dotted form, e.g. `2.999.10` or `1.3.6.1.4.1.53439.1`.
    pub fn parse(dotted: &str) -> Result<Self> {
        let bad = || Error::InvalidOid(dotted.chars().take(64).collect());
        let arcs: Vec<u64> = dotted
            .split('.')
            .map(|a| {
                // Reject signs, spaces and leading zeros ("01"): one spelling per OID.
                let canonical = !a.is_empty()
                    && a.bytes().all(|b| b.is_ascii_digit())
                    && (a == "0" || !a.starts_with('0'));
                if canonical {
                    a.parse().map_err(|_| bad())
                } else {
                    Err(bad())
                }
            })
            .collect::<Result<_>>()?;
        let (first, second, rest) = match arcs.as_slice() {
            [first, second, rest @ ..] => (*first, *second, rest),
            _ => return Err(bad()),
        };
        if first > 2 || (first < 2 && second > 39) {
            return Err(bad());
        }
        let head = (first * 40).checked_add(second).ok_or_else(bad)?;
        let mut ber = Vec::new();
        for arc in std::iter::once(head).chain(rest.iter().copied()) {
            push_base128(&mut ber, arc);
        }
        Ok(Oid(ber))
    }

    /// Validates DER content octets of an OBJECT IDENTIFIER.
    pub fn from_ber(content: &[u8]) -> Result<Self> {
        let oid = Oid(content.to_vec());
        match oid.try_arcs() {
            Some(_) => Ok(oid),
            None => Err(Error::InvalidOid(format!(
                "DER content {}",
                hex::encode_upper(content.get(..32).unwrap_or(content))
            ))),
        }
    }

    /// The DER content octets (without tag and length).
    pub fn as_ber(&self) -> &[u8] {
        &self.0
    }

    /// The arcs.
    pub fn arcs(&self) -> Vec<u64> {
        // Every constructor validated the encoding.
        self.try_arcs().unwrap_or_default()
    }

    fn try_arcs(&self) -> Option<Vec<u64>> {
        let mut subids = Vec::new();
        let mut value: u64 = 0;
        let mut fresh = true;
        for &byte in &self.0 {
            if fresh && byte == 0x80 {
                return None; // non-minimal encoding
            }
            value = value
                .checked_mul(128)?
                .checked_add(u64::from(byte & 0x7F))?;
            fresh = byte & 0x80 == 0;
            if fresh {
                subids.push(value);
                value = 0;
            }
        }
        if !fresh || subids.is_empty() {
            return None;
        }
        let head = subids[0];
        let (first, second) = match head {
            0..=39 => (0, head),
            40..=79 => (1, head - 40),
            _ => (2, head - 80),
        };
        let mut arcs = vec![first, second];
        arcs.extend_from_slice(&subids[1..]);
        Some(arcs)
    }
}

impl fmt::Display for Oid {
    /// The dotted form, arc by arc without building strings first (the
    /// eUICC and the SM-DP+ write OIDs on every download).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arc) in self.arcs().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl From<const_oid::ObjectIdentifier> for Oid {
    fn from(oid: const_oid::ObjectIdentifier) -> Self {
        Oid(oid.as_bytes().to_vec())
    }
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = (value & 0x7F) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sgp26_test_oids() {
        // subjectAltName registeredID of SGP.26's DPtls: 88 03 | 88 37 0A.
        let oid = Oid::from_ber(&[0x88, 0x37, 0x0A]).unwrap();
        assert_eq!(oid.to_string(), "2.999.10");
        assert_eq!(Oid::parse("2.999.10").unwrap(), oid);
        assert_eq!(Oid::parse("2.999.1").unwrap().as_ber(), &[0x88, 0x37, 0x01]);
    }

    #[test]
    fn matches_const_oid_where_it_can() {
        let policy = crate::profile::CertRole::DpPb.policy_oid();
        assert_eq!(Oid::from(policy).to_string(), policy.to_string());
        assert_eq!(Oid::parse(&policy.to_string()).unwrap(), Oid::from(policy));
    }

    #[test]
    fn rejects_bad_forms() {
        for s in [
            "", "2", "2.", ".2.1", "3.1", "1.40", "2.a", "2.-1", "2.01", " 2.1", "2.1 ",
        ] {
            assert!(Oid::parse(s).is_err(), "{s:?}");
        }
        assert!(Oid::from_ber(&[]).is_err());
        assert!(Oid::from_ber(&[0x88]).is_err());
        assert!(Oid::from_ber(&[0x2A, 0x80, 0x01]).is_err());
    }

    proptest! {
        #[test]
        fn dotted_round_trip(first in 0u64..3, second in 0u64..40, rest in proptest::collection::vec(any::<u64>(), 0..6)) {
            let mut arcs = vec![first, if first == 2 { second * 97 } else { second }];
            arcs.extend(rest);
            let dotted = arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            if let Ok(oid) = Oid::parse(&dotted) {
                prop_assert_eq!(oid.to_string(), dotted);
                prop_assert_eq!(Oid::from_ber(oid.as_ber()).unwrap(), oid);
            }
        }

        #[test]
        fn from_ber_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(oid) = Oid::from_ber(&bytes) {
                prop_assert_eq!(Oid::parse(&oid.to_string()).unwrap(), oid);
            }
        }
    }
}
