//! ES10b LoadBoundProfilePackage: the Bound Profile Package (`BF36`) is
//! not sent as one command but as the sequence of ES8+ pieces SGP.22
//! (section 2.5.5) prescribes, each its own STORE DATA chain:
//!
//! 1. the `BF36` header with the whole InitialiseSecureChannel (`BF23`),
//! 2. the whole `A0` (ConfigureISDP),
//! 3. the `A1` header, then each `88` (StoreMetadata) segment,
//! 4. the whole `A2` (ReplaceSessionKeys), when present,
//! 5. the `A3` header, then each `86` (profile element) segment.
//!
//! The eUICC answers the last piece with the ProfileInstallationResult
//! (`BF37`); when it fails earlier it answers that piece with the result and
//! the rest is not sent.

use ferrosim_asn1::tlv::Tlv;

use super::decode::children;
use super::types::InstallationResult;
use super::{Es10, Es10Error};
use crate::transport::Transport;

const F: &str = "LoadBoundProfilePackage";

/// The pieces of a Bound Profile Package, in sending order; each is a slice
/// of `bpp`.
pub fn segments(bpp: &[u8]) -> Result<Vec<&[u8]>, Es10Error> {
    let top = Tlv::parse_tagged(bpp, 0xBF36).map_err(|e| Es10Error::bad(F, format!("BPP: {e}")))?;
    let parts = children(F, &top)?;
    let expect = |index: usize, tag: u32| -> Result<Tlv<'_>, Es10Error> {
        match parts.get(index) {
            Some(t) if t.tag == tag => Ok(*t),
            Some(t) => Err(Es10Error::bad(
                F,
                format!("BPP element {index} is {:X}, expected {tag:X}", t.tag),
            )),
            None => Err(Es10Error::bad(F, format!("BPP lacks {tag:X}"))),
        }
    };
    let init = expect(0, 0xBF23)?;
    let configure = expect(1, 0xA0)?;
    let metadata = expect(2, 0xA1)?;
    let (replace, elements) = match parts.get(3) {
        Some(t) if t.tag == 0xA2 => (Some(*t), expect(4, 0xA3)?),
        _ => (None, expect(3, 0xA3)?),
    };
    let used = 4 + usize::from(replace.is_some());
    if parts.len() > used {
        return Err(Es10Error::bad(F, "BPP has elements after A3"));
    }

    let mut out = Vec::new();
    out.push(&bpp[..top.header().len() + init.raw.len()]);
    out.push(configure.raw);
    out.push(metadata.header());
    out.extend(segments_of(&metadata, 0x88)?);
    if let Some(replace) = replace {
        out.push(replace.raw);
    }
    out.push(elements.header());
    out.extend(segments_of(&elements, 0x86)?);
    Ok(out)
}

/// Every child of `parent`, each required to carry `tag`.
fn segments_of<'a>(parent: &Tlv<'a>, tag: u32) -> Result<Vec<&'a [u8]>, Es10Error> {
    let items = children(F, parent)?;
    if items.is_empty() {
        return Err(Es10Error::bad(
            F,
            format!("{:X} holds no segment", parent.tag),
        ));
    }
    items
        .iter()
        .map(|t| {
            if t.tag == tag {
                Ok(t.raw)
            } else {
                Err(Es10Error::bad(
                    F,
                    format!("{:X} holds a {:X} segment", parent.tag, t.tag),
                ))
            }
        })
        .collect()
}

impl<T: Transport> Es10<T> {
    /// ES10b LoadBoundProfilePackage: sends the BPP piece by piece and
    /// returns the eUICC's ProfileInstallationResult (success or failure).
    /// An `Err` means the loading itself broke down (APDU failure, no
    /// result): the download must then be cancelled with
    /// `loadBppExecutionError`.
    pub fn load_bound_profile_package(
        &mut self,
        bpp: &[u8],
    ) -> Result<InstallationResult, Es10Error> {
        let pieces = segments(bpp)?;
        let count = pieces.len();
        for (index, piece) in pieces.into_iter().enumerate() {
            let answer = self.transmit_es10(piece)?;
            if !answer.is_empty() {
                if index + 1 < count {
                    tracing::warn!(piece = index, "the eUICC ended the installation early");
                }
                return InstallationResult::decode(answer);
            }
        }
        Err(Es10Error::bad(
            F,
            "the eUICC returned no ProfileInstallationResult",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosim_asn1::tlv::tlv;

    fn sample(with_a2: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
        let init = tlv(0xBF23, &[0x82, 0x01, 0x01]);
        let a0 = tlv(0xA0, &tlv(0x87, &[1; 20]));
        let m1 = tlv(0x88, &[2; 30]);
        let m2 = tlv(0x88, &[3; 10]);
        let a1 = tlv(0xA1, &[m1.clone(), m2.clone()].concat());
        let a2 = tlv(0xA2, &tlv(0x87, &[4; 16]));
        let e1 = tlv(0x86, &[5; 300]);
        let e2 = tlv(0x86, &[6; 7]);
        let a3 = tlv(0xA3, &[e1.clone(), e2.clone()].concat());
        let mut body = [init.clone(), a0.clone(), a1.clone()].concat();
        if with_a2 {
            body.extend(a2.clone());
        }
        body.extend(a3.clone());
        let bpp = tlv(0xBF36, &body);
        let head = bpp.len() - body.len();
        let mut expected = vec![
            [&bpp[..head], &init[..]].concat(),
            a0,
            a1[..2].to_vec(),
            m1,
            m2,
        ];
        if with_a2 {
            expected.push(a2);
        }
        let a3_head = a3.len() - e1.len() - e2.len();
        expected.extend([a3[..a3_head].to_vec(), e1, e2]);
        (bpp, expected)
    }

    #[test]
    fn split_follows_sgp22() {
        for with_a2 in [false, true] {
            let (bpp, expected) = sample(with_a2);
            let got: Vec<Vec<u8>> = segments(&bpp)
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            assert_eq!(got, expected, "with A2: {with_a2}");
        }
    }

    #[test]
    fn malformed_packages_are_refused() {
        let (bpp, _) = sample(false);
        assert!(segments(&bpp[..bpp.len() - 1]).is_err());
        assert!(segments(&tlv(0xBF37, &[])).is_err());
        assert!(segments(&tlv(0xBF36, &tlv(0xA0, &[]))).is_err());
        let bad = tlv(
            0xBF36,
            &[
                tlv(0xBF23, &[]),
                tlv(0xA0, &[]),
                tlv(0xA1, &tlv(0x86, &[])),
                tlv(0xA3, &tlv(0x86, &[])),
            ]
            .concat(),
        );
        assert!(segments(&bad).is_err());
        let trailing = tlv(
            0xBF36,
            &[
                tlv(0xBF23, &[]),
                tlv(0xA0, &[]),
                tlv(0xA1, &tlv(0x88, &[])),
                tlv(0xA3, &tlv(0x86, &[])),
                tlv(0xA4, &[]),
            ]
            .concat(),
        );
        assert!(segments(&trailing).is_err());
    }
}
