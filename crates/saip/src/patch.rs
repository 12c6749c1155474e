//! Byte-exact patching of a package: replace the values of chosen TLVs and
//! rewrite only the length fields of their ancestors, and only when a length
//! actually changes. Every other byte is copied as it was.

use ferrosim_asn1::tlv::{write_length, write_tag};

use crate::error::Error;
use crate::node::{Node, sequence};

/// Replace the value of the TLV whose tag starts at `tlv_offset` (from the
/// package start) with `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValuePatch {
    /// Offset of the target TLV's first tag byte.
    pub tlv_offset: usize,
    /// The new value bytes.
    pub value: Vec<u8>,
}

/// Applies `patches` to a sequence of TLVs (a whole package). Targets must be
/// distinct and none may lie inside another target.
pub(crate) fn apply(bytes: &[u8], mut patches: Vec<ValuePatch>) -> Result<Vec<u8>, Error> {
    patches.sort_by_key(|p| p.tlv_offset);
    if let Some(out) = in_place(bytes, &patches) {
        return Ok(out);
    }
    let growth: usize = patches.iter().map(|p| p.value.len()).sum();
    let mut out = Vec::with_capacity(bytes.len() + growth);
    let applied = rebuild(bytes, 0, &patches, &mut out)?;
    if applied != patches.len() {
        let missed = patches
            .iter()
            .map(|p| p.tlv_offset)
            .find(|off| !is_tlv_start(bytes, *off))
            .unwrap_or(0);
        return Err(Error::PatchTarget { offset: missed });
    }
    Ok(out)
}

/// The usual personalisation, where every new value has its target's
/// length (ICCID, IMSI, keys, PINs): no length field changes, so the
/// result is the package copied once with the values written over, what
/// [`rebuild`] writes with one copy of each patched element per nesting
/// level. The targets are found by the same walk as [`rebuild`]'s; `None`
/// (a length changes, or a target is not a TLV or lies inside another, or
/// the walk meets a malformed TLV) leaves the patches to [`rebuild`], which
/// applies them or says what is wrong.
fn in_place(bytes: &[u8], patches: &[ValuePatch]) -> Option<Vec<u8>> {
    let mut values = Vec::with_capacity(patches.len());
    locate(bytes, 0, patches, &mut values)?;
    if values.len() != patches.len()
        || values
            .iter()
            .zip(patches)
            .any(|(range, p)| range.len() != p.value.len())
    {
        return None;
    }
    let mut out = bytes.to_vec();
    for (range, p) in values.into_iter().zip(patches) {
        out[range].copy_from_slice(&p.value);
    }
    Some(out)
}

/// Where the values of the TLVs `patches` target lie in `seq` (found at
/// `base`), in patch order: [`rebuild`]'s walk without the writing.
fn locate(
    seq: &[u8],
    base: usize,
    patches: &[ValuePatch],
    values: &mut Vec<std::ops::Range<usize>>,
) -> Option<()> {
    for node in sequence(seq, base).ok()? {
        let start = node.offset;
        let end = start + node.tlv.raw.len();
        let lo = patches.partition_point(|p| p.tlv_offset < start);
        let hi = patches.partition_point(|p| p.tlv_offset < end);
        match &patches[lo..hi] {
            [] => {}
            [only] if only.tlv_offset == start => {
                let at = node.value_offset();
                values.push(at..at + node.value().len());
            }
            [first, ..] if first.tlv_offset == start => return None,
            inner if node.tlv.is_constructed() => {
                locate(node.value(), node.value_offset(), inner, values)?;
            }
            _ => return None,
        }
    }
    Some(())
}

/// Writes `seq` (found at `base`) to `out` with the patches inside it
/// applied; returns how many patches were applied.
fn rebuild(
    seq: &[u8],
    base: usize,
    patches: &[ValuePatch],
    out: &mut Vec<u8>,
) -> Result<usize, Error> {
    let mut applied = 0;
    for node in sequence(seq, base)? {
        let start = node.offset;
        let end = start + node.tlv.raw.len();
        let lo = patches.partition_point(|p| p.tlv_offset < start);
        let hi = patches.partition_point(|p| p.tlv_offset < end);
        let inner = &patches[lo..hi];
        match inner {
            [] => out.extend_from_slice(node.tlv.raw),
            [only] if only.tlv_offset == start => {
                write_header(out, &node, only.value.len());
                out.extend_from_slice(&only.value);
                applied += 1;
            }
            [first, ..] if first.tlv_offset == start => {
                // A target inside another target.
                return Err(Error::PatchTarget {
                    offset: inner[1].tlv_offset,
                });
            }
            _ if node.tlv.is_constructed() => {
                let mut value = Vec::with_capacity(node.value().len() + 16);
                applied += rebuild(node.value(), node.value_offset(), inner, &mut value)?;
                write_header(out, &node, value.len());
                out.extend_from_slice(&value);
            }
            _ => {
                return Err(Error::PatchTarget {
                    offset: inner[0].tlv_offset,
                });
            }
        }
    }
    Ok(applied)
}

/// The original header when the length is unchanged, else tag and new DER length.
fn write_header(out: &mut Vec<u8>, node: &Node<'_>, new_len: usize) {
    if new_len == node.value().len() {
        out.extend_from_slice(node.tlv.header());
    } else {
        write_tag(out, node.tag());
        write_length(out, new_len);
    }
}

/// Whether a TLV starts at `offset` at some nesting level of `bytes`.
fn is_tlv_start(bytes: &[u8], offset: usize) -> bool {
    fn walk(seq: &[u8], base: usize, offset: usize) -> bool {
        let Ok(nodes) = sequence(seq, base) else {
            return false;
        };
        nodes.iter().any(|n| {
            n.offset == offset
                || (n.tlv.is_constructed()
                    && offset > n.offset
                    && offset < n.offset + n.tlv.raw.len()
                    && walk(n.value(), n.value_offset(), offset))
        })
    }
    walk(bytes, 0, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosim_asn1::tlv::tlv;

    fn sample() -> Vec<u8> {
        let inner = [tlv(0x80, &[1, 2]), tlv(0x81, &[3])].concat();
        [tlv(0xA0, &inner), tlv(0xAA, &[0x80, 0x00])].concat()
    }

    #[test]
    fn same_length_patch_is_in_place() {
        let bytes = sample();
        let out = apply(
            &bytes,
            vec![ValuePatch {
                tlv_offset: 2,
                value: vec![9, 9],
            }],
        )
        .unwrap();
        let mut expected = bytes.clone();
        expected[4] = 9;
        expected[5] = 9;
        assert_eq!(out, expected);
    }

    #[test]
    fn length_changes_propagate() {
        let bytes = sample();
        let out = apply(
            &bytes,
            vec![ValuePatch {
                tlv_offset: 6,
                value: vec![7; 200],
            }],
        )
        .unwrap();
        let inner = [tlv(0x80, &[1, 2]), tlv(0x81, &[7; 200])].concat();
        assert_eq!(out, [tlv(0xA0, &inner), tlv(0xAA, &[0x80, 0x00])].concat());
    }

    #[test]
    fn bad_targets_are_refused() {
        let bytes = sample();
        assert_eq!(
            apply(
                &bytes,
                vec![ValuePatch {
                    tlv_offset: 3,
                    value: vec![]
                }]
            ),
            Err(Error::PatchTarget { offset: 3 })
        );
        assert_eq!(
            apply(
                &bytes,
                vec![
                    ValuePatch {
                        tlv_offset: 0,
                        value: vec![]
                    },
                    ValuePatch {
                        tlv_offset: 2,
                        value: vec![]
                    }
                ]
            ),
            Err(Error::PatchTarget { offset: 2 })
        );
        assert_eq!(apply(&bytes, vec![]).unwrap(), bytes);
    }

    /// Same-length patches written in place give what the rebuild gives,
    /// nested or not, one or several, alone or beside a length change.
    #[test]
    fn in_place_writes_what_the_rebuild_writes() {
        let bytes = [
            tlv(
                0xA0,
                &[tlv(0x80, &[1, 2]), tlv(0xA1, &tlv(0x82, &[3, 4, 5]))].concat(),
            ),
            tlv(0x81, &[6]),
        ]
        .concat();
        let patch = |tlv_offset, value: &[u8]| ValuePatch {
            tlv_offset,
            value: value.to_vec(),
        };
        let cases = [
            vec![patch(2, &[9, 9])],
            vec![patch(8, &[7, 7, 7])],
            vec![patch(13, &[8]), patch(2, &[9, 9]), patch(8, &[7, 7, 7])],
            vec![patch(2, &[9, 9]), patch(13, &[8, 8])],
        ];
        for patches in cases {
            let mut sorted = patches.clone();
            sorted.sort_by_key(|p| p.tlv_offset);
            let growth: usize = sorted.iter().map(|p| p.value.len()).sum();
            let mut rebuilt = Vec::with_capacity(bytes.len() + growth);
            let applied = rebuild(&bytes, 0, &sorted, &mut rebuilt).unwrap();
            assert_eq!(applied, sorted.len());
            assert_eq!(apply(&bytes, patches).unwrap(), rebuilt);
        }
        // A length change or a target that is no TLV: not in place.
        assert_eq!(in_place(&bytes, &[patch(13, &[8, 8])]), None);
        assert_eq!(in_place(&bytes, &[patch(3, &[1])]), None);
        assert!(in_place(&bytes, &[patch(13, &[5])]).is_some());
    }
}
