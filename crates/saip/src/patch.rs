//! Byte-exact patching of a package: replace the values of chosen TLVs and
//! rewrite only the length fields of their ancestors, and only when a length
//! actually changes. Every other byte is copied as it was.

use std::ops::Range;
use std::sync::OnceLock;

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
#[cfg(test)]
pub(crate) fn apply(bytes: &[u8], patches: Vec<ValuePatch>) -> Result<Vec<u8>, Error> {
    apply_cached(bytes, patches, None)
}

/// Where the values of one set of patch targets lie in a package: the
/// targets' offsets (sorted) and their value ranges, in the same order, as
/// [`locate`] finds them; no ranges when a target is not a TLV or lies
/// inside another, or the walk meets a malformed TLV. The walk depends only
/// on the bytes and the offsets, so for one package and the same targets
/// (a profile type's package, personalised once per download at the same
/// places) it is found once and kept ([`LocateCache`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Located {
    offsets: Vec<usize>,
    values: Option<Vec<Range<usize>>>,
}

/// The [`Located`] targets of the first patches applied to one package.
pub(crate) type LocateCache = OnceLock<Located>;

impl Located {
    /// Walks `bytes` for the targets of `patches` (sorted by offset).
    fn find(bytes: &[u8], patches: &[ValuePatch]) -> Self {
        let mut values = Vec::with_capacity(patches.len());
        let found = locate(bytes, 0, patches, &mut values).is_some();
        Located {
            offsets: patches.iter().map(|p| p.tlv_offset).collect(),
            values: (found && values.len() == patches.len()).then_some(values),
        }
    }

    /// Whether these are the targets of `patches` (sorted by offset).
    fn is_for(&self, patches: &[ValuePatch]) -> bool {
        self.offsets.len() == patches.len()
            && self
                .offsets
                .iter()
                .zip(patches)
                .all(|(offset, p)| *offset == p.tlv_offset)
    }
}

/// [`apply`] to the package `cache` belongs to (`bytes`): where the targets
/// lie is read from `cache` when it holds these targets, and kept there on
/// first use. The result is the same as without the cache.
pub(crate) fn apply_cached(
    bytes: &[u8],
    mut patches: Vec<ValuePatch>,
    cache: Option<&LocateCache>,
) -> Result<Vec<u8>, Error> {
    patches.sort_by_key(|p| p.tlv_offset);
    if let Some(out) = in_place(bytes, &patches, cache) {
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
fn in_place(bytes: &[u8], patches: &[ValuePatch], cache: Option<&LocateCache>) -> Option<Vec<u8>> {
    let fresh;
    let located = match cache.map(|c| c.get_or_init(|| Located::find(bytes, patches))) {
        Some(kept) if kept.is_for(patches) => kept,
        _ => {
            fresh = Located::find(bytes, patches);
            &fresh
        }
    };
    let values = located.values.as_ref()?;
    if values
        .iter()
        .zip(patches)
        .any(|(range, p)| range.len() != p.value.len())
    {
        return None;
    }
    let mut out = bytes.to_vec();
    for (range, p) in values.iter().zip(patches) {
        out[range.clone()].copy_from_slice(&p.value);
    }
    Some(out)
}

/// Where the values of the TLVs `patches` target lie in `seq` (found at
/// `base`), in patch order: [`rebuild`]'s walk without the writing.
fn locate(
    seq: &[u8],
    base: usize,
    patches: &[ValuePatch],
    values: &mut Vec<Range<usize>>,
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
        assert_eq!(in_place(&bytes, &[patch(13, &[8, 8])], None), None);
        assert_eq!(in_place(&bytes, &[patch(3, &[1])], None), None);
        assert!(in_place(&bytes, &[patch(13, &[5])], None).is_some());
    }

    /// With a kept walk, patches give what they give without one: the same
    /// targets again (other values, same or other lengths), other targets
    /// (walked afresh), and targets the walk refused (left to the rebuild,
    /// which says what is wrong).
    #[test]
    fn kept_targets_give_what_a_fresh_walk_gives() {
        let bytes = sample();
        let patch = |tlv_offset, value: &[u8]| ValuePatch {
            tlv_offset,
            value: value.to_vec(),
        };
        let cache = LocateCache::default();
        let runs = [
            vec![patch(6, &[1]), patch(2, &[5, 5])],
            vec![patch(2, &[6, 6]), patch(6, &[2])],
            vec![patch(2, &[6, 6, 6]), patch(6, &[2])],
            vec![patch(8, &[0x81, 0x01])],
            vec![patch(3, &[])],
            vec![patch(2, &[4, 4])],
        ];
        for patches in runs {
            assert_eq!(
                apply_cached(&bytes, patches.clone(), Some(&cache)),
                apply(&bytes, patches)
            );
        }
        assert_eq!(cache.get().map(|l| l.offsets.clone()), Some(vec![2, 6]));

        let refused = LocateCache::default();
        for _ in 0..2 {
            assert_eq!(
                apply_cached(&bytes, vec![patch(3, &[])], Some(&refused)),
                Err(Error::PatchTarget { offset: 3 })
            );
        }
        assert!(refused.get().is_some_and(|l| l.values.is_none()));
    }
}
