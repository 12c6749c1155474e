//! The `ProfileHeader` element: version, profile type, ICCID and what the
//! eUICC must support (services, generic file system templates, applets).

use std::fmt;

use const_oid::ObjectIdentifier;

use crate::element::ElementKind;
use crate::error::Error;
use crate::identity::{Iccid, header_iccid_digits};
use crate::node::{Node, require, uint_field};

const EL: ElementKind = ElementKind::Header;

/// The decoded `ProfileHeader` of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileHeader {
    /// `major-version` of the SAIP specification the package follows.
    pub major_version: u8,
    /// `minor-version`.
    pub minor_version: u8,
    /// `profileType`, a free text set by the profile designer.
    pub profile_type: Option<String>,
    /// `iccid` as the digits of its in-order BCD (padding removed); not
    /// Luhn-checked, since templates may carry placeholders: see [`ProfileHeader::iccid`].
    pub iccid_digits: String,
    /// `pol`: the profile policy rules bits, raw.
    pub pol: Option<Vec<u8>>,
    /// `eUICC-Mandatory-services`.
    pub mandatory_services: Vec<Service>,
    /// `eUICC-Mandatory-GFSTEList`: the generic file system templates the
    /// package uses, as dotted OIDs (`2.23.143.1.2.1` is the MF template).
    pub mandatory_gfste: Vec<String>,
    /// `connectivityParameters`, raw.
    pub connectivity_parameters: Option<Vec<u8>>,
    /// `eUICC-Mandatory-AIDs`: applications (AID, 2-byte version) the eUICC must hold.
    pub mandatory_aids: Vec<MandatoryAid>,
    /// `iotOptions.pix` of an IoT minimal profile.
    pub iot_pix: Option<Vec<u8>>,
}

/// One entry of `eUICC-Mandatory-AIDs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandatoryAid {
    /// Application identifier (5 to 16 bytes).
    pub aid: Vec<u8>,
    /// Required version (2 bytes).
    pub version: [u8; 2],
}

impl ProfileHeader {
    /// The header ICCID, Luhn-checked.
    pub fn iccid(&self) -> Result<Iccid, Error> {
        Ok(Iccid::new(&self.iccid_digits)?)
    }

    /// Decodes the header element (outer tag `A0`).
    pub(crate) fn decode(node: &Node<'_>) -> Result<Self, Error> {
        let major_version = uint_field(
            &require(node, 0x80, EL, "major-version")?,
            EL,
            "major-version",
            255,
        )? as u8;
        let minor_version = uint_field(
            &require(node, 0x81, EL, "minor-version")?,
            EL,
            "minor-version",
            255,
        )? as u8;
        let profile_type = match node.find(0x82)? {
            Some(n) => Some(
                String::from_utf8(n.value().to_vec())
                    .map_err(|_| invalid("profileType", "not UTF-8"))?,
            ),
            None => None,
        };
        let iccid = require(node, 0x83, EL, "iccid")?;
        if iccid.value().len() != 10 {
            return Err(invalid("iccid", "must be 10 bytes"));
        }
        let iccid_digits =
            header_iccid_digits(iccid.value()).map_err(|_| invalid("iccid", "not BCD digits"))?;
        let pol = node.find(0x84)?.map(|n| n.value().to_vec());
        let mandatory_services = require(node, 0xA5, EL, "eUICC-Mandatory-services")?
            .children()?
            .iter()
            .map(|s| Service::from_tag(s.tag()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mandatory_gfste = Vec::new();
        for oid in require(node, 0xA6, EL, "eUICC-Mandatory-GFSTEList")?.children()? {
            if oid.tag() != 0x06 {
                return Err(invalid(
                    "eUICC-Mandatory-GFSTEList",
                    "entry is not an OBJECT IDENTIFIER",
                ));
            }
            let parsed = ObjectIdentifier::from_bytes(oid.value())
                .map_err(|_| invalid("eUICC-Mandatory-GFSTEList", "malformed OBJECT IDENTIFIER"))?;
            mandatory_gfste.push(dotted(&parsed));
        }
        let connectivity_parameters = node.find(0x87)?.map(|n| n.value().to_vec());
        let mut mandatory_aids = Vec::new();
        if let Some(list) = node.find(0xA8)? {
            for entry in list.children()? {
                let aid = require(&entry, 0x80, EL, "eUICC-Mandatory-AIDs.aid")?;
                let version = require(&entry, 0x81, EL, "eUICC-Mandatory-AIDs.version")?;
                let version: [u8; 2] = version
                    .value()
                    .try_into()
                    .map_err(|_| invalid("eUICC-Mandatory-AIDs.version", "must be 2 bytes"))?;
                mandatory_aids.push(MandatoryAid {
                    aid: aid.value().to_vec(),
                    version,
                });
            }
        }
        let iot_pix = match node.find(0xA9)? {
            Some(opts) => Some(require(&opts, 0x80, EL, "iotOptions.pix")?.value().to_vec()),
            None => None,
        };
        Ok(ProfileHeader {
            major_version,
            minor_version,
            profile_type,
            iccid_digits,
            pol,
            mandatory_services,
            mandatory_gfste,
            connectivity_parameters,
            mandatory_aids,
            iot_pix,
        })
    }
}

/// The dotted form of a validated OID (`2.23.143.1.2.1`), digit by digit
/// into one allocation: the eUICC decodes the header of every package it
/// installs, and `to_string` through `fmt` cost a third of that decoding.
fn dotted(oid: &ObjectIdentifier) -> String {
    let mut out = String::with_capacity(oid.as_bytes().len() * 3 + 2);
    for (i, arc) in oid.arcs().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let mut digits = [0u8; 10];
        let mut n = digits.len();
        let mut v = arc;
        loop {
            n -= 1;
            digits[n] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        out.extend(digits[n..].iter().map(|&d| char::from(d)));
    }
    out
}

fn invalid(field: &'static str, reason: &'static str) -> Error {
    Error::InvalidField {
        element: EL,
        field,
        reason,
    }
}

/// One entry of the `ServicesList` (SAIP): a feature the eUICC must support
/// to install the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// A named service; the index is its position in `ServicesList`.
    Known(KnownService),
    /// A service added by a later version of the module (context tag number).
    Unknown(u32),
}

/// The services `PEDefinitions` v3 names, in `ServicesList` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the ASN.1 identifier in Rust case
pub enum KnownService {
    Contactless,
    Usim,
    Isim,
    Csim,
    Milenage,
    Tuak128,
    Cave,
    GbaUsim,
    GbaIsim,
    Mbms,
    Eap,
    Javacard,
    Multos,
    MultipleUsim,
    MultipleIsim,
    MultipleCsim,
    Tuak256,
    UsimTestAlgorithm,
    BerTlv,
    DfLink,
    CatTp,
    GetIdentity,
    ProfileAX25519,
    ProfileBP256,
    SuciCalculatorApi,
    DnsResolution,
    Scp11ac,
    Scp11cAuthorizationMechanism,
    S16mode,
    Eaka,
}

const SERVICES: [(KnownService, &str); 30] = [
    (KnownService::Contactless, "contactless"),
    (KnownService::Usim, "usim"),
    (KnownService::Isim, "isim"),
    (KnownService::Csim, "csim"),
    (KnownService::Milenage, "milenage"),
    (KnownService::Tuak128, "tuak128"),
    (KnownService::Cave, "cave"),
    (KnownService::GbaUsim, "gba-usim"),
    (KnownService::GbaIsim, "gba-isim"),
    (KnownService::Mbms, "mbms"),
    (KnownService::Eap, "eap"),
    (KnownService::Javacard, "javacard"),
    (KnownService::Multos, "multos"),
    (KnownService::MultipleUsim, "multiple-usim"),
    (KnownService::MultipleIsim, "multiple-isim"),
    (KnownService::MultipleCsim, "multiple-csim"),
    (KnownService::Tuak256, "tuak256"),
    (KnownService::UsimTestAlgorithm, "usim-test-algorithm"),
    (KnownService::BerTlv, "ber-tlv"),
    (KnownService::DfLink, "dfLink"),
    (KnownService::CatTp, "cat-tp"),
    (KnownService::GetIdentity, "get-identity"),
    (KnownService::ProfileAX25519, "profile-a-x25519"),
    (KnownService::ProfileBP256, "profile-b-p256"),
    (KnownService::SuciCalculatorApi, "suciCalculatorApi"),
    (KnownService::DnsResolution, "dns-resolution"),
    (KnownService::Scp11ac, "scp11ac"),
    (
        KnownService::Scp11cAuthorizationMechanism,
        "scp11c-authorization-mechanism",
    ),
    (KnownService::S16mode, "s16mode"),
    (KnownService::Eaka, "eaka"),
];

impl Service {
    /// The service for an entry tag of the `ServicesList` (`80`..`9E`, then `9F1F`...).
    fn from_tag(tag: u32) -> Result<Self, Error> {
        let number = if tag & !0x1F == 0x80 && tag & 0x1F != 0x1F {
            tag & 0x1F
        } else if tag & 0xFF00 == 0x9F00 && tag & 0x80 == 0 {
            tag & 0x7F
        } else {
            return Err(invalid(
                "eUICC-Mandatory-services",
                "entry is not a context-tagged NULL",
            ));
        };
        Ok(match SERVICES.get(number as usize) {
            Some((known, _)) => Service::Known(*known),
            None => Service::Unknown(number),
        })
    }

    /// The ASN.1 identifier (`"usim"`, `"milenage"`, ...) or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Known(k) => SERVICES
                .iter()
                .find(|(s, _)| *s == k)
                .map_or("unknown", |(_, name)| name),
            Service::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Unknown(n) => write!(f, "unknown[{n}]"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_tags() {
        assert_eq!(
            Service::from_tag(0x81).unwrap(),
            Service::Known(KnownService::Usim)
        );
        assert_eq!(
            Service::from_tag(0x91).unwrap(),
            Service::Known(KnownService::UsimTestAlgorithm)
        );
        assert_eq!(Service::from_tag(0x9D).unwrap().name(), "eaka");
        assert_eq!(Service::from_tag(0x9E).unwrap(), Service::Unknown(30));
        assert_eq!(Service::from_tag(0x9F21).unwrap(), Service::Unknown(33));
        assert!(Service::from_tag(0x30).is_err());
        assert_eq!(Service::Unknown(40).to_string(), "unknown[40]");
    }

    /// The dotted form written digit by digit is const-oid's own.
    #[test]
    fn dotted_oids_match_const_oid() {
        for text in [
            "2.23.143.1.2.1",
            "0.0.0",
            "1.39.4294967295",
            "2.5.4.1000000",
            "1.3.6.1.4.1.53439.1",
        ] {
            let oid = ObjectIdentifier::new(text).unwrap();
            assert_eq!(dotted(&oid), oid.to_string());
            assert_eq!(dotted(&oid), text);
        }
    }
}
