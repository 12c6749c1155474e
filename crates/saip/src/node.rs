//! A BER-TLV element together with its absolute offset in the package, and
//! the small value decoders (unsigned INTEGER, UTF8String) the crate needs.
//!
//! Offsets matter twice: errors name where the package is wrong, and the
//! personaliser patches values at exact positions.

use ferrosim_asn1::tlv::Tlv;

use crate::element::ElementKind;
use crate::error::Error;

/// Deepest nesting of constructed values accepted (SAIP structures stay well below).
pub(crate) const MAX_DEPTH: usize = 24;

/// A TLV and the offset of its first byte from the start of the package.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    /// The element.
    pub tlv: Tlv<'a>,
    /// Offset of its tag from the start of the package.
    pub offset: usize,
}

impl<'a> Node<'a> {
    /// The tag, as [`Tlv::tag`].
    pub fn tag(&self) -> u32 {
        self.tlv.tag
    }

    /// The value bytes.
    pub fn value(&self) -> &'a [u8] {
        self.tlv.value
    }

    /// Offset of the first value byte from the start of the package.
    pub fn value_offset(&self) -> usize {
        self.offset + self.tlv.header().len()
    }

    /// The direct children of a constructed element.
    pub fn children(&self) -> Result<Vec<Node<'a>>, Error> {
        sequence(self.tlv.value, self.value_offset())
    }

    /// The first child with `tag`, if any. Like [`Node::children`], every
    /// child is read (a malformed one is an error even after the match),
    /// without collecting them.
    pub fn find(&self, tag: u32) -> Result<Option<Node<'a>>, Error> {
        let mut found = None;
        for_each_in(self.tlv.value, self.value_offset(), |child| {
            if found.is_none() && child.tag() == tag {
                found = Some(child);
            }
        })?;
        Ok(found)
    }

    /// The first child, if any, without reading the others.
    pub fn first_child(&self) -> Result<Option<Node<'a>>, Error> {
        let value = self.tlv.value;
        if value.is_empty() {
            return Ok(None);
        }
        let offset = self.value_offset();
        let (tlv, _) = Tlv::parse(value).map_err(|e| Error::tlv(offset, e))?;
        Ok(Some(Node { tlv, offset }))
    }
}

/// Splits `bytes` (found at `base` in the package) into consecutive TLVs.
pub(crate) fn sequence(bytes: &[u8], base: usize) -> Result<Vec<Node<'_>>, Error> {
    let mut out = Vec::new();
    for_each_in(bytes, base, |node| out.push(node))?;
    Ok(out)
}

/// Calls `f` with each of the consecutive TLVs of `bytes` (found at `base`
/// in the package), stopping at the first malformed one.
fn for_each_in<'a>(bytes: &'a [u8], base: usize, mut f: impl FnMut(Node<'a>)) -> Result<(), Error> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = base + (bytes.len() - rest.len());
        let (tlv, tail) = Tlv::parse(rest).map_err(|e| Error::tlv(offset, e))?;
        f(Node { tlv, offset });
        rest = tail;
    }
    Ok(())
}

/// Checks that every constructed value inside `node` is itself a sequence of
/// well-formed TLVs, down to `MAX_DEPTH` levels.
///
/// A package is checked on every installation and is almost always well
/// formed, so a quick walk that only answers yes or no goes first; when it
/// says no, the detailed walk finds the offending element and its offset.
pub(crate) fn check_well_formed(node: &Node<'_>, depth: usize) -> Result<(), Error> {
    if !node.tlv.is_constructed() {
        return Ok(());
    }
    if depth < MAX_DEPTH && values_well_formed(node.value(), depth) {
        return Ok(());
    }
    check_well_formed_detailed(node, depth)
}

/// Whether `value`, the value of a constructed element `depth` levels deep,
/// is a sequence of TLVs whose constructed values are so too, down to
/// `MAX_DEPTH` levels. Accepts exactly what [`check_well_formed_detailed`]
/// accepts (tags of at most 4 bytes, definite lengths of at most 4 bytes),
/// without building the elements or the errors.
fn values_well_formed(value: &[u8], depth: usize) -> bool {
    let end = value.len();
    let mut i = 0;
    while i < end {
        let first = value[i];
        let mut j = i + 1;
        if first & 0x1F == 0x1F {
            loop {
                let Some(&b) = value.get(j) else {
                    return false;
                };
                if j - i >= 4 {
                    return false;
                }
                j += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let Some(&l) = value.get(j) else {
            return false;
        };
        j += 1;
        let len = if l < 0x80 {
            usize::from(l)
        } else {
            let n = usize::from(l & 0x7F);
            if n == 0 || n > 4 || end - j < n {
                return false;
            }
            let len = value[j..j + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            j += n;
            len
        };
        if len > end - j {
            return false;
        }
        if first & 0x20 != 0
            && (depth + 1 >= MAX_DEPTH || !values_well_formed(&value[j..j + len], depth + 1))
        {
            return false;
        }
        i = j + len;
    }
    true
}

/// [`check_well_formed`] element by element, naming the first malformed one.
fn check_well_formed_detailed(node: &Node<'_>, depth: usize) -> Result<(), Error> {
    if !node.tlv.is_constructed() {
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(Error::NestingTooDeep {
            offset: node.offset,
            limit: MAX_DEPTH,
        });
    }
    let base = node.value_offset();
    let value = node.value();
    let mut rest = value;
    while !rest.is_empty() {
        let offset = base + (value.len() - rest.len());
        let (tlv, tail) = Tlv::parse(rest).map_err(|e| Error::tlv(offset, e))?;
        if tlv.is_constructed() {
            check_well_formed_detailed(&Node { tlv, offset }, depth + 1)?;
        }
        rest = tail;
    }
    Ok(())
}

/// Decodes a non-negative DER INTEGER of at most 8 significant bytes.
pub(crate) fn decode_uint(bytes: &[u8]) -> Option<u64> {
    let (&first, _) = bytes.split_first()?;
    if first & 0x80 != 0 {
        return None;
    }
    let significant: &[u8] = if first == 0 { &bytes[1..] } else { bytes };
    if significant.len() > 8 {
        return None;
    }
    Some(
        significant
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// Reads an unsigned INTEGER field bounded by `max`.
pub(crate) fn uint_field(
    node: &Node<'_>,
    element: ElementKind,
    field: &'static str,
    max: u64,
) -> Result<u64, Error> {
    match decode_uint(node.value()) {
        Some(v) if v <= max => Ok(v),
        _ => Err(Error::InvalidField {
            element,
            field,
            reason: "not an integer in range",
        }),
    }
}

/// The first child with `tag`, or [`Error::MissingField`].
pub(crate) fn require<'a>(
    node: &Node<'a>,
    tag: u32,
    element: ElementKind,
    field: &'static str,
) -> Result<Node<'a>, Error> {
    node.find(tag)?
        .ok_or(Error::MissingField { element, field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_decoding() {
        assert_eq!(decode_uint(&[0x03]), Some(3));
        assert_eq!(decode_uint(&[0x00, 0x81]), Some(129));
        assert_eq!(decode_uint(&[0x81]), None);
        assert_eq!(decode_uint(&[]), None);
        assert_eq!(decode_uint(&[0x01; 9]), None);
    }

    #[test]
    fn offsets_are_absolute() {
        let bytes = [0xA0, 0x05, 0x80, 0x01, 0x02, 0x81, 0x00];
        let top = sequence(&bytes, 100).unwrap();
        assert_eq!(top[0].offset, 100);
        let kids = top[0].children().unwrap();
        assert_eq!(kids[0].offset, 102);
        assert_eq!(kids[1].offset, 105);
        assert_eq!(kids[0].value_offset(), 104);
        assert!(check_well_formed(&top[0], 0).is_ok());
        let bad = [0xA0, 0x02, 0x80, 0x05];
        let top = sequence(&bad, 0).unwrap();
        assert!(matches!(
            check_well_formed(&top[0], 0),
            Err(Error::MalformedTlv { offset: 2, .. })
        ));
    }

    /// The quick walk agrees with the detailed one on every input: nested
    /// elements cut short, multi-byte tags and lengths, nesting at and past
    /// the limit, and every one-byte change of a small nested element.
    #[test]
    fn quick_walk_agrees_with_the_detailed_walk() {
        fn nested(levels: usize) -> Vec<u8> {
            let mut v = vec![0x80, 0x01, 0x07];
            for _ in 0..levels {
                let mut outer = vec![0xA0, v.len() as u8];
                outer.extend_from_slice(&v);
                v = outer;
            }
            v
        }
        let agree = |bytes: &[u8]| {
            let Ok((tlv, _)) = Tlv::parse(bytes) else {
                return;
            };
            let node = Node { tlv, offset: 0 };
            let detailed = check_well_formed_detailed(&node, 0).is_ok();
            let quick = !tlv.is_constructed() || values_well_formed(tlv.value, 0);
            assert_eq!(quick, detailed, "{bytes:02X?}");
            assert_eq!(
                check_well_formed(&node, 0).is_ok(),
                detailed,
                "{bytes:02X?}"
            );
        };
        let mut samples = vec![
            vec![0xBF, 0x22, 0x05, 0x9F, 0x70, 0x02, 0xAA, 0xBB],
            vec![0xBF, 0x22, 0x06, 0xBF, 0xFF, 0xFF, 0xFF, 0x01, 0x00],
            vec![0xBF, 0x22, 0x05, 0xBF, 0xFF, 0xFF, 0x7F, 0x00],
            vec![0xA0, 0x05, 0x81, 0x82, 0x00, 0x01, 0xCC],
            vec![0xA0, 0x04, 0x81, 0x80, 0x00, 0x00],
            vec![0xA0, 0x08, 0x81, 0x85, 0x00, 0x00, 0x00, 0x00, 0x01, 0xCC],
            vec![0xA0, 0x03, 0xA1, 0x81, 0x00],
            vec![0xA0, 0x03, 0xA1, 0x05, 0x00],
        ];
        for levels in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            samples.push(nested(levels));
        }
        let base = nested(3);
        for i in 0..base.len() {
            for b in [
                0x00, 0x1F, 0x20, 0x3F, 0x7F, 0x80, 0x81, 0x84, 0x85, 0xBF, 0xFF,
            ] {
                let mut m = base.clone();
                m[i] = b;
                samples.push(m);
            }
        }
        for s in &samples {
            agree(s);
        }
    }
}
