//! The GSMA RSP certificate profile (SGP.22 section 4.5.2): roles, their
//! policy OIDs and the key usage each role must carry.
//!
//! This room holds facts only; parsing is in [`crate::cert`], checking in
//! [`crate::verify`], issuing in [`crate::generate`].

use std::fmt;

use const_oid::ObjectIdentifier;

/// `id-rsp` (2.23.146.1): the GSMA RSP arc.
pub const ID_RSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.146.1");
/// `id-rspExt-permittedEins` (2.23.146.1.2.2.0): the EUM extension listing
/// permitted EID prefixes, `SEQUENCE OF PrintableString`.
pub const ID_RSP_PERMITTED_EINS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.146.1.2.2.0");
/// X.520 serialNumber attribute (2.5.4.5): carries the EID in an eUICC
/// certificate's subject, the EID prefix in an EUM's nameConstraints.
pub const ID_AT_SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
/// id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
pub const ID_KP_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2).
pub const ID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// The role of a certificate in the RSP PKI, given by its certificate policy
/// (`id-rspRole-*`, 2.23.146.1.2.1.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertRole {
    /// Certificate Issuer: the root (`id-rspRole-ci`, .0).
    Ci,
    /// eUICC (`id-rspRole-euicc`, .1): signs with the ECASD key; EID in the subject.
    Euicc,
    /// eUICC Manufacturer (`id-rspRole-eum`, .2): issues eUICC certificates within its EID ranges.
    Eum,
    /// SM-DP+ TLS server (`id-rspRole-dp-tls`, .3).
    DpTls,
    /// SM-DP+ authentication (`id-rspRole-dp-auth`, .4): signs serverSigned1.
    DpAuth,
    /// SM-DP+ profile binding (`id-rspRole-dp-pb`, .5): signs smdpSigned2 and the BPP.
    DpPb,
    /// SM-DS TLS server (`id-rspRole-ds-tls`, .6).
    DsTls,
    /// SM-DS authentication (`id-rspRole-ds-auth`, .7).
    DsAuth,
}

impl CertRole {
    /// Every role, in OID order.
    pub const ALL: [CertRole; 8] = [
        CertRole::Ci,
        CertRole::Euicc,
        CertRole::Eum,
        CertRole::DpTls,
        CertRole::DpAuth,
        CertRole::DpPb,
        CertRole::DsTls,
        CertRole::DsAuth,
    ];

    /// The certificate policy OID that marks this role.
    pub const fn policy_oid(self) -> ObjectIdentifier {
        match self {
            CertRole::Ci => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.0"),
            CertRole::Euicc => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.1"),
            CertRole::Eum => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.2"),
            CertRole::DpTls => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.3"),
            CertRole::DpAuth => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.4"),
            CertRole::DpPb => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.5"),
            CertRole::DsTls => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.6"),
            CertRole::DsAuth => ObjectIdentifier::new_unwrap("2.23.146.1.2.1.7"),
        }
    }

    /// The role a policy OID names, if it is an RSP role policy.
    pub fn from_policy_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.policy_oid() == *oid)
    }

    /// Whether certificates of this role issue other certificates (CI, EUM).
    pub const fn is_ca(self) -> bool {
        matches!(self, CertRole::Ci | CertRole::Eum)
    }

    /// Whether this is one of the three SM-DP+ roles.
    pub const fn is_smdp(self) -> bool {
        matches!(self, CertRole::DpTls | CertRole::DpAuth | CertRole::DpPb)
    }

    /// Whether this role's certificate serves TLS (needs extendedKeyUsage serverAuth).
    pub const fn is_tls(self) -> bool {
        matches!(self, CertRole::DpTls | CertRole::DsTls)
    }

    /// The key usage bits a certificate of this role must have.
    pub const fn required_key_usage(self) -> KeyUsage {
        match self {
            CertRole::Ci => KeyUsage(KeyUsage::KEY_CERT_SIGN.0 | KeyUsage::CRL_SIGN.0),
            CertRole::Eum => KeyUsage::KEY_CERT_SIGN,
            _ => KeyUsage::DIGITAL_SIGNATURE,
        }
    }

    /// Short name as used in GSMA documents ("CI", "EUM", "eUICC", "DPauth", ...).
    pub const fn name(self) -> &'static str {
        match self {
            CertRole::Ci => "CI",
            CertRole::Euicc => "eUICC",
            CertRole::Eum => "EUM",
            CertRole::DpTls => "DPtls",
            CertRole::DpAuth => "DPauth",
            CertRole::DpPb => "DPpb",
            CertRole::DsTls => "DStls",
            CertRole::DsAuth => "DSauth",
        }
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keyUsage extension's bits (RFC 5280 4.2.1.3), bit 0 = digitalSignature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyUsage(pub u16);

impl KeyUsage {
    /// digitalSignature (bit 0).
    pub const DIGITAL_SIGNATURE: KeyUsage = KeyUsage(1 << 0);
    /// nonRepudiation / contentCommitment (bit 1).
    pub const NON_REPUDIATION: KeyUsage = KeyUsage(1 << 1);
    /// keyEncipherment (bit 2).
    pub const KEY_ENCIPHERMENT: KeyUsage = KeyUsage(1 << 2);
    /// dataEncipherment (bit 3).
    pub const DATA_ENCIPHERMENT: KeyUsage = KeyUsage(1 << 3);
    /// keyAgreement (bit 4).
    pub const KEY_AGREEMENT: KeyUsage = KeyUsage(1 << 4);
    /// keyCertSign (bit 5).
    pub const KEY_CERT_SIGN: KeyUsage = KeyUsage(1 << 5);
    /// cRLSign (bit 6).
    pub const CRL_SIGN: KeyUsage = KeyUsage(1 << 6);
    /// encipherOnly (bit 7).
    pub const ENCIPHER_ONLY: KeyUsage = KeyUsage(1 << 7);
    /// decipherOnly (bit 8).
    pub const DECIPHER_ONLY: KeyUsage = KeyUsage(1 << 8);

    const NAMES: [&'static str; 9] = [
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: KeyUsage) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set here.
    pub const fn intersects(self, other: KeyUsage) -> bool {
        self.0 & other.0 != 0
    }
}

impl fmt::Debug for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUsage({self})")
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// A key identifier (subjectKeyIdentifier / authorityKeyIdentifier value):
/// `ferrosim_ids::CiKeyId`, 1 to 64 bytes stored inline.
///
/// A CI's key id is what SGP.22 calls the CI PKId (`euiccCiPKIdListForVerification`,
/// `euiccCiPKIdToBeUsed`). `Display` gives upper-case hex.
pub use ferrosim_ids::CiKeyId as KeyId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_oids_round_trip() {
        for role in CertRole::ALL {
            assert_eq!(CertRole::from_policy_oid(&role.policy_oid()), Some(role));
            assert!(role.policy_oid().to_string().starts_with("2.23.146.1.2.1."));
        }
        assert_eq!(CertRole::DpPb.policy_oid().to_string(), "2.23.146.1.2.1.5");
        assert_eq!(CertRole::from_policy_oid(&ID_RSP), None);
    }

    #[test]
    fn key_usage_display_and_contains() {
        let ci = CertRole::Ci.required_key_usage();
        assert_eq!(ci.to_string(), "keyCertSign, cRLSign");
        assert!(ci.contains(KeyUsage::KEY_CERT_SIGN));
        assert!(!ci.contains(KeyUsage::DIGITAL_SIGNATURE));
        assert_eq!(KeyUsage::default().to_string(), "none");
    }

    #[test]
    fn key_id_is_hex() {
        assert_eq!(
            KeyId::from_bytes(&[0xF5, 0x41]).unwrap().to_string(),
            "F541"
        );
    }
}
