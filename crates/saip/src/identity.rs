//! Subscription identities that validate on construction: the ICCID (ITU-T
//! E.118, with its Luhn check digit) and the IMSI (3GPP TS 23.003), with the
//! byte codings a profile package uses for them.
//!
//! The types live in `ferrosim-ids` ([`Iccid`], [`Imsi`], [`luhn_digit`]);
//! their errors convert into this crate's [`Error`] variants (`IccidLength`,
//! `IccidCheckDigit`, `ImsiCoding`, ...).
//!
//! Codings:
//! - EF.ICCID (ETSI TS 102 221) and SGP.22 `Iccid`: 10 bytes of BCD with the
//!   nibbles of each byte swapped, padded with `F`.
//! - SAIP `ProfileHeader.iccid`: 10 bytes of BCD in reading order (not
//!   swapped), padded with `F` (as the GSMA TS.48 packages and pySim use it).
//! - EF.IMSI (3GPP TS 31.102 4.2.2): a length byte, then the identity type
//!   and parity nibble followed by the digits, nibble-swapped, `F`-padded to 9 bytes.

use crate::error::Error;

pub use ferrosim_ids::{Iccid, Imsi, luhn_digit};

/// Decodes the in-order BCD of a profile header ICCID to its digits without
/// checking the Luhn digit (templates may carry placeholders).
pub(crate) fn header_iccid_digits(bytes: &[u8]) -> Result<String, Error> {
    bcd::in_order_digits(bytes)
}

/// Decodes swapped BCD (EF.ICCID) to its digits without checking the Luhn digit.
pub(crate) fn swapped_bcd_digits(bytes: &[u8]) -> Result<String, Error> {
    bcd::swapped_digits(bytes)
}

/// ICCID digits as BCD, the two ways SIM and RSP data carry them: swapped
/// (EF.ICCID and SGP.22 `Iccid`: the first digit in the low nibble) and in
/// order (a profile header `iccid`), padded with `F` to 10 bytes. Decoding
/// does not check the Luhn digit; [`Iccid`] does. (`ferrosim_ids::bcd`
/// with this crate's [`Error`].)
pub mod bcd {
    use crate::error::Error;

    /// Digits of swapped BCD, up to the `F` padding.
    pub fn swapped_digits(bytes: &[u8]) -> Result<String, Error> {
        Ok(ferrosim_ids::bcd::swapped_digits(bytes)?)
    }

    /// Digits of in-order BCD, up to the `F` padding.
    pub fn in_order_digits(bytes: &[u8]) -> Result<String, Error> {
        Ok(ferrosim_ids::bcd::in_order_digits(bytes)?)
    }

    /// Up to 20 decimal digits as 10 bytes of swapped BCD (`F` padded);
    /// a character that is not a digit is coded as its low nibble.
    pub fn swapped_bytes(digits: &str) -> [u8; 10] {
        ferrosim_ids::bcd::swapped_bytes(digits)
    }
}

#[cfg(test)]
mod tests {
    //! The identity types are tested in `ferrosim-ids`; these tests check
    //! that their errors arrive here as this crate's variants.
    use super::*;

    fn iccid(digits: &str) -> Result<Iccid, Error> {
        Ok(Iccid::new(digits)?)
    }

    fn imsi(digits: &str) -> Result<Imsi, Error> {
        Ok(Imsi::new(digits)?)
    }

    #[test]
    fn bcd_errors_are_this_crates() {
        assert_eq!(bcd::swapped_digits(&[0xA1]), Err(Error::IccidBcd));
        assert_eq!(bcd::in_order_digits(&[0x1F, 0x23]), Err(Error::IccidBcd));
        assert_eq!(header_iccid_digits(&[0x89, 0x1F]).unwrap(), "891");
        assert_eq!(swapped_bcd_digits(&[0x98, 0xF1]).unwrap(), "891");
        assert_eq!(
            bcd::swapped_digits(&bcd::swapped_bytes("8949449999999990049")).unwrap(),
            "8949449999999990049"
        );
    }

    #[test]
    fn iccid_errors_are_this_crates() {
        assert_eq!(
            iccid("8949449999999990048"),
            Err(Error::IccidCheckDigit {
                expected: 9,
                found: 8
            })
        );
        assert!(matches!(
            iccid("894944999999999004"),
            Err(Error::IccidLength { found: 18, .. })
        ));
        assert_eq!(iccid("894944999999999004a"), Err(Error::IccidNotDigits));
        assert_eq!(
            Error::from(Iccid::from_bcd(&[0x98, 0xA4]).unwrap_err()),
            Error::IccidBcd
        );
        assert_eq!(
            iccid("8949449999999990049F").unwrap().as_str(),
            "8949449999999990049"
        );
    }

    #[test]
    fn imsi_errors_are_this_crates() {
        assert_eq!(imsi("00101"), Err(Error::ImsiLength { found: 5 }));
        assert_eq!(imsi("00101x"), Err(Error::ImsiNotDigits));
        assert_eq!(
            Error::from(Imsi::with_mnc_len("001010123456063", 4).unwrap_err()),
            Error::MncLength { found: 4 }
        );
        assert_eq!(
            Error::from(Imsi::from_ef_imsi(&[]).unwrap_err()),
            Error::ImsiCoding {
                reason: "empty file"
            }
        );
        let other = Error::from(ferrosim_ids::MatchingId::new("").unwrap_err());
        assert_eq!(other, Error::InvalidId(ferrosim_ids::IdError::MatchingId));
    }
}
