//! The values inside a CRL: its number, and the revoked certificates with
//! their reason ([`RevocationReason`], RFC 5280 5.3.1) and dates.

use std::cmp::Ordering;
use std::fmt;
use std::time::SystemTime;

use x509_cert::ext::pkix::CrlReason;

/// A cRLNumber: a non-negative integer of up to 20 octets (RFC 5280 5.2.3),
/// kept as its big-endian magnitude without leading zeros and ordered as a number.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CrlNumber(Vec<u8>);

impl CrlNumber {
    /// The number `n`.
    pub fn new(n: u128) -> Self {
        Self::from_be_bytes(&n.to_be_bytes())
    }

    /// A number from big-endian bytes (leading zeros are dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        CrlNumber(bytes[start..].to_vec())
    }

    /// Big-endian magnitude, no leading zeros (empty for zero).
    pub fn as_be_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value, when it fits 128 bits.
    pub fn to_u128(&self) -> Option<u128> {
        (self.0.len() <= 16).then(|| self.0.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b)))
    }

    /// The next number (this plus one).
    pub fn successor(&self) -> Self {
        let mut bytes = self.0.clone();
        for b in bytes.iter_mut().rev() {
            if *b == 0xFF {
                *b = 0;
            } else {
                *b += 1;
                return CrlNumber(bytes);
            }
        }
        bytes.insert(0, 1);
        CrlNumber(bytes)
    }
}

impl Ord for CrlNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for CrlNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_u128() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "0x{}", hex::encode_upper(&self.0)),
        }
    }
}

impl fmt::Debug for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrlNumber({self})")
    }
}

/// Why a certificate was revoked (CRLReason, RFC 5280 5.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6): suspended; still refused while listed.
    CertificateHold,
    /// removeFromCRL (8): only meaningful in delta CRLs, which RSP does not use.
    RemoveFromCrl,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 name (`keyCompromise`, ...), as the CLI accepts it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::RemoveFromCrl => "removeFromCRL",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// Reads a name (case-insensitive) or the numeric code.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text) || text.parse::<u32>() == Ok(r.code()))
    }

    /// The ENUMERATED value.
    pub const fn code(self) -> u32 {
        self.to_x509() as u32
    }

    pub(crate) const fn to_x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::RemoveFromCrl => CrlReason::RemoveFromCRL,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            Self::AaCompromise => CrlReason::AaCompromise,
        }
    }

    pub(crate) fn from_x509(reason: CrlReason) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.to_x509() == reason)
            .unwrap_or(Self::Unspecified)
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One revoked certificate of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number (DER INTEGER content, as in the certificate).
    pub serial: Vec<u8>,
    /// revocationDate.
    pub revoked_at: SystemTime,
    /// reasonCode entry extension, if given.
    pub reason: Option<RevocationReason>,
    /// invalidityDate entry extension: when the key is known or suspected to
    /// have been compromised, if given.
    pub invalidity_date: Option<SystemTime>,
    /// `id-rsp-expDate` entry extension: when the revoked certificate expires
    /// (after which an eUICC may drop the entry), if given.
    pub certificate_expiry: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_order_as_numbers() {
        assert!(CrlNumber::new(255) < CrlNumber::new(256));
        assert_eq!(CrlNumber::from_be_bytes(&[0, 0, 1]), CrlNumber::new(1));
        assert_eq!(CrlNumber::new(255).successor(), CrlNumber::new(256));
        assert_eq!(CrlNumber::new(0).successor(), CrlNumber::new(1));
        assert_eq!(CrlNumber::new(2024).to_string(), "2024");
        let big = CrlNumber::from_be_bytes(&[1; 20]);
        assert!(big > CrlNumber::new(u128::MAX));
        assert!(big.to_string().starts_with("0x"));
    }

    #[test]
    fn reasons_by_name_and_code() {
        assert_eq!(
            RevocationReason::parse("keycompromise"),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            RevocationReason::parse("9"),
            Some(RevocationReason::PrivilegeWithdrawn)
        );
        assert_eq!(RevocationReason::parse("7"), None);
        assert_eq!(RevocationReason::parse("stolen"), None);
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_x509(r.to_x509()), r);
        }
    }
}
