//! `pinCodes` and `pukCodes` elements: the PINs, ADM keys and unblocking
//! codes of the MF and of each DF/ADF.
//!
//! Within the `pinCodes` that follow the MF only global key references
//! (PIN1 `01`, ADM1 `0A`, ...) appear; after a DF/ADF only local ones
//! (second PIN of the application, `81` = PIN2, ...). A key reference
//! therefore says by itself which PIN it is, wherever it appears.

use std::fmt;

use crate::element::ElementKind;
use crate::error::Error;
use crate::node::{Node, decode_uint, require};
use crate::secrets::decode_code_digits;

/// Key reference of PIN1 (global PIN of application 1) and of PUK1.
pub const KEY_REF_PIN1: u8 = 0x01;
/// Key reference of PIN2 (`secondPINAppl1`, local PIN) and of PUK2.
pub const KEY_REF_PIN2: u8 = 0x81;
/// Key reference of ADM1 (administrative key 1).
pub const KEY_REF_ADM1: u8 = 0x0A;

/// One `PINConfiguration`.
#[derive(Clone, PartialEq, Eq)]
pub struct PinEntry {
    /// The MF, DF or ADF element whose `pinCodes` define it (`mf`, `usim`...).
    pub context: Option<ElementKind>,
    /// `keyReference` (`01` PIN1, `0A` ADM1, `81` PIN2, ...).
    pub key_reference: u8,
    /// `pinValue`: 8 bytes, digits in ASCII padded with `FF` for PINs.
    pub value: [u8; 8],
    /// `unblockingPINReference`: the PUK that unblocks it, if any.
    pub unblocking_reference: Option<u8>,
    /// `pinAttributes` (default 7).
    pub attributes: u8,
    /// Maximum attempts (high nibble of `maxNumOfAttemps-retryNumLeft`, default 3).
    pub max_attempts: u8,
    /// Attempts left (low nibble, default 3).
    pub retries_left: u8,
}

impl PinEntry {
    /// The value as digits, when it is ASCII digits padded with `FF`.
    pub fn digits(&self) -> Option<String> {
        decode_code_digits(&self.value)
    }
}

impl fmt::Debug for PinEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinEntry")
            .field("context", &self.context)
            .field(
                "key_reference",
                &format_args!("{:#04X}", self.key_reference),
            )
            .field("value", &"<redacted>")
            .field("unblocking_reference", &self.unblocking_reference)
            .field("attributes", &self.attributes)
            .field("max_attempts", &self.max_attempts)
            .field("retries_left", &self.retries_left)
            .finish()
    }
}

/// One `PUKConfiguration`.
#[derive(Clone, PartialEq, Eq)]
pub struct PukEntry {
    /// `keyReference` (`01` PUK1, `81` PUK2, ...).
    pub key_reference: u8,
    /// `pukValue`: 8 bytes, ASCII digits.
    pub value: [u8; 8],
    /// Maximum attempts (high nibble, default 10).
    pub max_attempts: u8,
    /// Attempts left (low nibble, default 10).
    pub retries_left: u8,
}

impl PukEntry {
    /// The value as digits, when it is ASCII digits (padded with `FF`).
    pub fn digits(&self) -> Option<String> {
        decode_code_digits(&self.value)
    }
}

impl fmt::Debug for PukEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PukEntry")
            .field(
                "key_reference",
                &format_args!("{:#04X}", self.key_reference),
            )
            .field("value", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("retries_left", &self.retries_left)
            .finish()
    }
}

/// A decoded code entry with the position of its value TLV.
pub(crate) struct CodeNode<'a, T> {
    /// The decoded entry.
    pub entry: T,
    /// The `pinValue` / `pukValue` TLV.
    pub value: Node<'a>,
}

/// Decodes the `pinconfig` list of a `pinCodes` element (empty when the
/// element shares another directory's PINs through `filePath`).
pub(crate) fn decode_pins<'a>(
    element: &Node<'a>,
    context: Option<ElementKind>,
) -> Result<Vec<CodeNode<'a, PinEntry>>, Error> {
    const EL: ElementKind = ElementKind::PinCodes;
    let codes = require(element, 0xA1, EL, "pinCodes")?;
    let Some(list) = codes.find(0xA0)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for config in list.children()? {
        let key_reference = small_uint(
            &require(&config, 0x80, EL, "keyReference")?,
            EL,
            "keyReference",
        )?;
        let value = require(&config, 0x81, EL, "pinValue")?;
        let unblocking_reference = match config.find(0x82)? {
            Some(n) => Some(small_uint(&n, EL, "unblockingPINReference")?),
            None => None,
        };
        let attributes = match config.find(0x83)? {
            Some(n) => small_uint(&n, EL, "pinAttributes")?,
            None => 7,
        };
        let attempts = match config.find(0x84)? {
            Some(n) => small_uint(&n, EL, "maxNumOfAttemps-retryNumLeft")?,
            None => 0x33,
        };
        out.push(CodeNode {
            entry: PinEntry {
                context,
                key_reference,
                value: eight(&value, EL, "pinValue")?,
                unblocking_reference,
                attributes,
                max_attempts: attempts >> 4,
                retries_left: attempts & 0x0F,
            },
            value,
        });
    }
    Ok(out)
}

/// Decodes the list of a `pukCodes` element.
pub(crate) fn decode_puks<'a>(element: &Node<'a>) -> Result<Vec<CodeNode<'a, PukEntry>>, Error> {
    const EL: ElementKind = ElementKind::PukCodes;
    let list = require(element, 0xA1, EL, "pukCodes")?;
    let mut out = Vec::new();
    for config in list.children()? {
        let key_reference = small_uint(
            &require(&config, 0x80, EL, "keyReference")?,
            EL,
            "keyReference",
        )?;
        let value = require(&config, 0x81, EL, "pukValue")?;
        let attempts = match config.find(0x82)? {
            Some(n) => small_uint(&n, EL, "maxNumOfAttemps-retryNumLeft")?,
            None => 0xAA,
        };
        out.push(CodeNode {
            entry: PukEntry {
                key_reference,
                value: eight(&value, EL, "pukValue")?,
                max_attempts: attempts >> 4,
                retries_left: attempts & 0x0F,
            },
            value,
        });
    }
    Ok(out)
}

fn small_uint(node: &Node<'_>, element: ElementKind, field: &'static str) -> Result<u8, Error> {
    decode_uint(node.value())
        .and_then(|v| u8::try_from(v).ok())
        .ok_or(Error::InvalidField {
            element,
            field,
            reason: "not an integer in 0..=255",
        })
}

fn eight(node: &Node<'_>, element: ElementKind, field: &'static str) -> Result<[u8; 8], Error> {
    node.value().try_into().map_err(|_| Error::InvalidField {
        element,
        field,
        reason: "must be 8 bytes",
    })
}
