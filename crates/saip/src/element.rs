//! Profile element kinds: the alternatives of the `ProfileElement` CHOICE of
//! the TCA `PEDefinitions` module, and a borrowed view of one element.
//!
//! `PEDefinitions` uses AUTOMATIC TAGS, so each alternative is encoded with a
//! context tag numbered by its position in the CHOICE, constructed because
//! every alternative is a SEQUENCE: `[0]` header is `A0`, `[1]`
//! genericFileManagement is `A1`, ..., `[30]` df-snpn is `BE`, and from `[31]`
//! on the high-tag form `BF 1F`, `BF 20`, ... is used.

use std::fmt;

/// Which alternative of the `ProfileElement` CHOICE an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `header` ProfileHeader, `[0]`.
    Header,
    /// `genericFileManagement`, `[1]`.
    GenericFileManagement,
    /// `pinCodes`, `[2]`.
    PinCodes,
    /// `pukCodes`, `[3]`.
    PukCodes,
    /// `akaParameter`, `[4]`.
    AkaParameter,
    /// `cdmaParameter`, `[5]`.
    CdmaParameter,
    /// `securityDomain`, `[6]`.
    SecurityDomain,
    /// `rfm`, `[7]`.
    Rfm,
    /// `application`, `[8]`.
    Application,
    /// `nonStandard`, `[9]`.
    NonStandard,
    /// `end`, `[10]`.
    End,
    /// `rfu1`..`rfu5` placeholders, `[11]`..`[15]` (the number is 1..=5).
    Rfu(u8),
    /// `mf`, `[16]`.
    Mf,
    /// `cd`, `[17]`.
    Cd,
    /// `telecom`, `[18]`.
    Telecom,
    /// `usim`, `[19]`.
    Usim,
    /// `opt-usim`, `[20]`.
    OptUsim,
    /// `isim`, `[21]`.
    Isim,
    /// `opt-isim`, `[22]`.
    OptIsim,
    /// `phonebook`, `[23]`.
    Phonebook,
    /// `gsm-access`, `[24]`.
    GsmAccess,
    /// `csim`, `[25]`.
    Csim,
    /// `opt-csim`, `[26]`.
    OptCsim,
    /// `eap`, `[27]`.
    Eap,
    /// `df-5gs`, `[28]`.
    Df5gs,
    /// `df-saip`, `[29]`.
    DfSaip,
    /// `df-snpn`, `[30]`.
    DfSnpn,
    /// `df-5gprose`, `[31]`.
    Df5gProse,
    /// `iot`, `[32]`.
    Iot,
    /// `opt-iot`, `[33]`.
    OptIot,
    /// An alternative added by a later version of the module (the CHOICE is
    /// extensible); the value is its context tag number.
    Unknown(u32),
}

/// The alternatives in CHOICE order; the index is the context tag number.
const KINDS: [ElementKind; 34] = [
    ElementKind::Header,
    ElementKind::GenericFileManagement,
    ElementKind::PinCodes,
    ElementKind::PukCodes,
    ElementKind::AkaParameter,
    ElementKind::CdmaParameter,
    ElementKind::SecurityDomain,
    ElementKind::Rfm,
    ElementKind::Application,
    ElementKind::NonStandard,
    ElementKind::End,
    ElementKind::Rfu(1),
    ElementKind::Rfu(2),
    ElementKind::Rfu(3),
    ElementKind::Rfu(4),
    ElementKind::Rfu(5),
    ElementKind::Mf,
    ElementKind::Cd,
    ElementKind::Telecom,
    ElementKind::Usim,
    ElementKind::OptUsim,
    ElementKind::Isim,
    ElementKind::OptIsim,
    ElementKind::Phonebook,
    ElementKind::GsmAccess,
    ElementKind::Csim,
    ElementKind::OptCsim,
    ElementKind::Eap,
    ElementKind::Df5gs,
    ElementKind::DfSaip,
    ElementKind::DfSnpn,
    ElementKind::Df5gProse,
    ElementKind::Iot,
    ElementKind::OptIot,
];

impl ElementKind {
    /// The kind for an encoded outer tag (as [`ferrosim_asn1::tlv::Tlv::tag`]
    /// returns it), or `None` if the tag is not a constructed context tag.
    pub fn from_tag(tag: u32) -> Option<Self> {
        let number = context_number(tag)?;
        Some(match KINDS.get(number as usize) {
            Some(kind) => *kind,
            None => ElementKind::Unknown(number),
        })
    }

    /// The context tag number of this alternative.
    pub fn number(self) -> u32 {
        match self {
            ElementKind::Unknown(n) => n,
            ElementKind::Rfu(n) => 10 + u32::from(n),
            kind => KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u32,
        }
    }

    /// The encoded outer tag of this alternative (`A0`, `A1`, ..., `BF1F`, ...).
    pub fn tag(self) -> u32 {
        constructed_context_tag(self.number())
    }

    /// The identifier used in `PEDefinitions` (`"opt-usim"`, `"akaParameter"`...).
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Header => "header",
            ElementKind::GenericFileManagement => "genericFileManagement",
            ElementKind::PinCodes => "pinCodes",
            ElementKind::PukCodes => "pukCodes",
            ElementKind::AkaParameter => "akaParameter",
            ElementKind::CdmaParameter => "cdmaParameter",
            ElementKind::SecurityDomain => "securityDomain",
            ElementKind::Rfm => "rfm",
            ElementKind::Application => "application",
            ElementKind::NonStandard => "nonStandard",
            ElementKind::End => "end",
            ElementKind::Rfu(_) => "rfu",
            ElementKind::Mf => "mf",
            ElementKind::Cd => "cd",
            ElementKind::Telecom => "telecom",
            ElementKind::Usim => "usim",
            ElementKind::OptUsim => "opt-usim",
            ElementKind::Isim => "isim",
            ElementKind::OptIsim => "opt-isim",
            ElementKind::Phonebook => "phonebook",
            ElementKind::GsmAccess => "gsm-access",
            ElementKind::Csim => "csim",
            ElementKind::OptCsim => "opt-csim",
            ElementKind::Eap => "eap",
            ElementKind::Df5gs => "df-5gs",
            ElementKind::DfSaip => "df-saip",
            ElementKind::DfSnpn => "df-snpn",
            ElementKind::Df5gProse => "df-5gprose",
            ElementKind::Iot => "iot",
            ElementKind::OptIot => "opt-iot",
            ElementKind::Unknown(_) => "unknown",
        }
    }

    /// Whether this element creates files from a SAIP template (`mf`, `usim`,
    /// `df-5gs`, ...): its fields after `templateID` are `File` values.
    pub fn is_template(self) -> bool {
        self.number() >= 16 && !matches!(self, ElementKind::Unknown(_))
    }

    /// Whether this element opens a new PIN context (MF, DF or ADF) for the
    /// `pinCodes` elements that follow it.
    pub fn opens_pin_context(self) -> bool {
        matches!(
            self,
            ElementKind::Mf
                | ElementKind::Telecom
                | ElementKind::Usim
                | ElementKind::Isim
                | ElementKind::Csim
                | ElementKind::Eap
                | ElementKind::Iot
        )
    }
}

impl fmt::Display for ElementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElementKind::Rfu(n) => write!(f, "rfu{n}"),
            ElementKind::Unknown(n) => write!(f, "unknown[{n}]"),
            kind => f.write_str(kind.name()),
        }
    }
}

/// One profile element, borrowed from its package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileElement<'a> {
    /// Which CHOICE alternative this is.
    pub kind: ElementKind,
    /// The whole element (tag, length, value) exactly as in the package.
    pub raw: &'a [u8],
    /// Offset of the element from the start of the package.
    pub offset: usize,
    /// The `identification` of its `PEHeader` (the number an eUICC reports in
    /// `PEStatus`); `None` for the profile header, which has no `PEHeader`.
    pub identification: Option<u16>,
    /// Whether its `PEHeader` has `mandated` set (support of the element is mandatory).
    pub mandated: bool,
}

/// The context tag number of a constructed context-specific tag.
fn context_number(tag: u32) -> Option<u32> {
    if tag <= 0xFF {
        let b = tag as u8;
        if b & 0xE0 == 0xA0 && b & 0x1F != 0x1F {
            return Some(u32::from(b & 0x1F));
        }
        return None;
    }
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let bytes = &bytes[skip..];
    if bytes[0] != 0xBF {
        return None;
    }
    let mut n: u32 = 0;
    for b in &bytes[1..] {
        n = (n << 7) | u32::from(b & 0x7F);
    }
    Some(n)
}

/// The encoded tag `[n]` constructed, context-specific (`A0 | n`, or
/// `BF` followed by base-128 groups from 31 on).
pub(crate) fn constructed_context_tag(n: u32) -> u32 {
    if n < 31 {
        return 0xA0 | n;
    }
    let mut groups = vec![(n & 0x7F) as u8];
    let mut rest = n >> 7;
    while rest > 0 {
        groups.push(((rest & 0x7F) as u8) | 0x80);
        rest >>= 7;
    }
    groups
        .iter()
        .rev()
        .fold(0xBFu32, |acc, b| (acc << 8) | u32::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_choice_positions() {
        assert_eq!(ElementKind::from_tag(0xA0), Some(ElementKind::Header));
        assert_eq!(
            ElementKind::from_tag(0xA1),
            Some(ElementKind::GenericFileManagement)
        );
        assert_eq!(ElementKind::from_tag(0xAA), Some(ElementKind::End));
        assert_eq!(ElementKind::from_tag(0xB0), Some(ElementKind::Mf));
        assert_eq!(ElementKind::from_tag(0xB4), Some(ElementKind::OptUsim));
        assert_eq!(ElementKind::from_tag(0xBD), Some(ElementKind::DfSaip));
        assert_eq!(ElementKind::from_tag(0xBF1F), Some(ElementKind::Df5gProse));
        assert_eq!(ElementKind::from_tag(0xBF21), Some(ElementKind::OptIot));
        assert_eq!(
            ElementKind::from_tag(0xBF22),
            Some(ElementKind::Unknown(34))
        );
        assert_eq!(ElementKind::from_tag(0x30), None);
        assert_eq!(ElementKind::from_tag(0x80), None);
        for kind in KINDS {
            assert_eq!(ElementKind::from_tag(kind.tag()), Some(kind), "{kind}");
        }
        assert_eq!(ElementKind::Unknown(200).tag(), 0xBF8148);
        assert_eq!(
            ElementKind::from_tag(0xBF8148),
            Some(ElementKind::Unknown(200))
        );
    }

    #[test]
    fn template_kinds() {
        assert!(ElementKind::Usim.is_template());
        assert!(ElementKind::OptIot.is_template());
        assert!(!ElementKind::AkaParameter.is_template());
        assert!(!ElementKind::Unknown(40).is_template());
        assert_eq!(ElementKind::OptUsim.to_string(), "opt-usim");
        assert_eq!(ElementKind::Rfu(3).to_string(), "rfu3");
    }
}
