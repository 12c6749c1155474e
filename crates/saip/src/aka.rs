//! `akaParameter` elements: the network authentication algorithm of a NAA
//! and its subscriber secrets (K, OPc), or a mapping to another NAA's.
//!
//! Layout (`PE-AKAParameter`, AUTOMATIC TAGS): `[0]` PEHeader, `[1]`
//! algoConfiguration, a CHOICE of `[0]` mappingParameter or `[1]`
//! algoParameter `{ [0] algorithmID, [1] algorithmOptions, [2] key, [3] opc,
//! ... }`.

use std::fmt;

use crate::element::ElementKind;
use crate::error::Error;
use crate::node::{Node, require, uint_field};

const EL: ElementKind = ElementKind::AkaParameter;

/// The algorithm of an `algoParameter` (`algorithmID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AkaAlgorithm {
    /// Milenage (3GPP TS 35.206), `1`.
    Milenage,
    /// TUAK (3GPP TS 35.231), `2`.
    Tuak,
    /// The USIM test algorithm (3GPP TS 34.108, XOR based), `3`.
    UsimTestAlgorithm,
    /// A value this module version does not name.
    Other(u64),
}

impl AkaAlgorithm {
    fn from_id(id: u64) -> Self {
        match id {
            1 => AkaAlgorithm::Milenage,
            2 => AkaAlgorithm::Tuak,
            3 => AkaAlgorithm::UsimTestAlgorithm,
            other => AkaAlgorithm::Other(other),
        }
    }
}

impl fmt::Display for AkaAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AkaAlgorithm::Milenage => f.write_str("milenage"),
            AkaAlgorithm::Tuak => f.write_str("tuak"),
            AkaAlgorithm::UsimTestAlgorithm => f.write_str("usim-test-algorithm"),
            AkaAlgorithm::Other(n) => write!(f, "algorithm {n}"),
        }
    }
}

/// What one `akaParameter` element configures.
#[derive(Clone, PartialEq, Eq)]
pub enum AkaParameters {
    /// `algoParameter`: the algorithm and the secrets of this NAA.
    Algorithm {
        /// `algorithmID`.
        algorithm: AkaAlgorithm,
        /// `algorithmOptions` (one byte).
        options: u8,
        /// `key`: the subscriber key K.
        k: Vec<u8>,
        /// `opc`: OPc for Milenage, TOPc for TUAK.
        opc: Vec<u8>,
    },
    /// `mappingParameter`: reuse the parameters of the NAA `source_aid`.
    Mapping {
        /// `mappingOptions` (one byte).
        options: u8,
        /// `mappingSource`, the AID whose parameters apply.
        source_aid: Vec<u8>,
    },
}

impl fmt::Debug for AkaParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AkaParameters::Algorithm {
                algorithm, options, ..
            } => f
                .debug_struct("Algorithm")
                .field("algorithm", algorithm)
                .field("options", options)
                .field("k", &"<redacted>")
                .field("opc", &"<redacted>")
                .finish(),
            AkaParameters::Mapping {
                options,
                source_aid,
            } => f
                .debug_struct("Mapping")
                .field("options", options)
                .field("source_aid", &hex::encode(source_aid))
                .finish(),
        }
    }
}

/// An `akaParameter` element decoded, with the positions of its key fields.
pub(crate) struct AkaNodes<'a> {
    /// The decoded parameters.
    pub parameters: AkaParameters,
    /// The `key` TLV (algoParameter only).
    pub key: Option<Node<'a>>,
    /// The `opc` TLV (algoParameter only).
    pub opc: Option<Node<'a>>,
}

/// Decodes one `akaParameter` element.
pub(crate) fn decode<'a>(element: &Node<'a>) -> Result<AkaNodes<'a>, Error> {
    let config = require(element, 0xA1, EL, "algoConfiguration")?;
    let choice = config
        .children()?
        .into_iter()
        .next()
        .ok_or(Error::MissingField {
            element: EL,
            field: "algoConfiguration",
        })?;
    match choice.tag() {
        0xA1 => {
            let id = require(&choice, 0x80, EL, "algorithmID")?;
            let algorithm = AkaAlgorithm::from_id(uint_field(&id, EL, "algorithmID", u64::MAX)?);
            let options = one_byte(
                &require(&choice, 0x81, EL, "algorithmOptions")?,
                "algorithmOptions",
            )?;
            let key = require(&choice, 0x82, EL, "key")?;
            let opc = require(&choice, 0x83, EL, "opc")?;
            Ok(AkaNodes {
                parameters: AkaParameters::Algorithm {
                    algorithm,
                    options,
                    k: key.value().to_vec(),
                    opc: opc.value().to_vec(),
                },
                key: Some(key),
                opc: Some(opc),
            })
        }
        0xA0 => {
            let options = one_byte(
                &require(&choice, 0x80, EL, "mappingOptions")?,
                "mappingOptions",
            )?;
            let source = require(&choice, 0x81, EL, "mappingSource")?;
            Ok(AkaNodes {
                parameters: AkaParameters::Mapping {
                    options,
                    source_aid: source.value().to_vec(),
                },
                key: None,
                opc: None,
            })
        }
        _ => Err(Error::InvalidField {
            element: EL,
            field: "algoConfiguration",
            reason: "unknown CHOICE alternative",
        }),
    }
}

fn one_byte(node: &Node<'_>, field: &'static str) -> Result<u8, Error> {
    match node.value() {
        [b] => Ok(*b),
        _ => Err(Error::InvalidField {
            element: EL,
            field,
            reason: "must be one byte",
        }),
    }
}
