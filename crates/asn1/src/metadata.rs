//! A StoreMetadataRequest (`BF25`) encoded once and reused for many
//! profiles: the SM-DP+ sends one per download of a profile type, the
//! simulator gives one to every profile it deploys, and the profiles of one
//! type (or one ISD-P) differ only in their ICCID.
//!
//! The ICCID is StoreMetadataRequest's first component (`5A`), an OCTET
//! STRING of exactly 10 bytes, so it lies at the same place in every
//! encoding: writing another ICCID over the template's gives, byte for
//! byte, what encoding the metadata again with that ICCID gives.

use crate::tlv::{Tlv, TlvError};

/// Tag of StoreMetadataRequest.
const TAG_STORE_METADATA: u32 = 0xBF25;
/// Tag of its first component, `iccid` (\[APPLICATION 26\]).
const TAG_ICCID: u32 = 0x5A;

/// An encoded StoreMetadataRequest and where its ICCID's 10 bytes lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccidTemplate {
    der: Vec<u8>,
    iccid_at: usize,
}

/// Why an encoding cannot serve as an [`IccidTemplate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The encoding is not one well-formed TLV.
    #[error(transparent)]
    Malformed(#[from] TlvError),
    /// It is not a StoreMetadataRequest whose first component is the
    /// ICCID it was encoded with.
    #[error("the ICCID is not its first component")]
    IccidNotFirst,
}

impl IccidTemplate {
    /// The template of `der`, a StoreMetadataRequest encoded with the ICCID
    /// `iccid` (the 10 bytes of its `5A` component).
    pub fn new(der: Vec<u8>, iccid: &[u8; 10]) -> Result<Self, TemplateError> {
        let outer = Tlv::parse_exact(&der)?;
        let first = outer.children().next().transpose()?;
        let iccid_at = match first {
            Some(first)
                if outer.tag == TAG_STORE_METADATA
                    && first.tag == TAG_ICCID
                    && first.value == iccid.as_slice() =>
            {
                outer.header().len() + first.header().len()
            }
            _ => return Err(TemplateError::IccidNotFirst),
        };
        Ok(Self { der, iccid_at })
    }

    /// The metadata with `iccid` written in.
    pub fn with_iccid(&self, iccid: &[u8; 10]) -> Vec<u8> {
        let mut der = self.der.clone();
        der[self.iccid_at..self.iccid_at + iccid.len()].copy_from_slice(iccid);
        der
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlv::tlv;

    fn metadata(iccid: &[u8; 10]) -> Vec<u8> {
        tlv(
            TAG_STORE_METADATA,
            &[tlv(TAG_ICCID, iccid), tlv(0x91, b"SP"), tlv(0x92, b"name")].concat(),
        )
    }

    #[test]
    fn another_iccid_is_written_over_the_first() {
        let first = [0x98, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xF1];
        let other = [0x98, 0x44, 1, 2, 3, 4, 5, 6, 7, 0x08];
        let template = IccidTemplate::new(metadata(&first), &first).unwrap();
        assert_eq!(template.with_iccid(&other), metadata(&other));
        assert_eq!(template.with_iccid(&first), metadata(&first));
    }

    #[test]
    fn other_shapes_are_refused() {
        let iccid = [0x98, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xF1];
        let other = [0x98, 0x44, 1, 2, 3, 4, 5, 6, 7, 0x08];
        // Another ICCID, another outer tag, the ICCID not first, nothing inside.
        for der in [
            metadata(&other),
            tlv(0xBF26, &tlv(TAG_ICCID, &iccid)),
            tlv(
                TAG_STORE_METADATA,
                &[tlv(0x91, b"SP"), tlv(TAG_ICCID, &iccid)].concat(),
            ),
            tlv(TAG_STORE_METADATA, &[]),
        ] {
            assert_eq!(
                IccidTemplate::new(der, &iccid),
                Err(TemplateError::IccidNotFirst)
            );
        }
        assert!(matches!(
            IccidTemplate::new(vec![0xBF, 0x25, 0x05, 0x5A], &iccid),
            Err(TemplateError::Malformed(_))
        ));
        assert!(matches!(
            IccidTemplate::new(tlv(TAG_STORE_METADATA, &[0x5A, 0x0A, 0x98]), &iccid),
            Err(TemplateError::Malformed(_))
        ));
    }
}
