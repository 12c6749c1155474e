//! Zero-copy BER-TLV reading and DER-style TLV writing.
//!
//! SGP.22 signs and MACs byte ranges *as received*: a re-encoded structure may
//! differ from what the peer signed. This module walks raw BER-TLV without
//! decoding values, so callers can cut out exactly the bytes they need.
//!
//! Tags are returned as the big-endian integer of their encoded bytes (for
//! example `0xBF25` for `[APPLICATION/CONTEXT 37] constructed`, `0x5F37` for the
//! signature wrapper), which matches how SGP.22 writes them.

use thiserror::Error;

/// Why a byte string is not a well-formed BER-TLV.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlvError {
    /// The input ended inside a tag, a length or a value.
    #[error("truncated TLV: needed {needed} more byte(s) at offset {offset}")]
    Truncated {
        /// Offset (within the parsed slice) where more bytes were needed.
        offset: usize,
        /// How many more bytes were needed.
        needed: usize,
    },
    /// A tag longer than 4 bytes: not used by any RSP structure.
    #[error("tag too long at offset {0}")]
    TagTooLong(usize),
    /// Indefinite length (`0x80`): not allowed in DER and not used by RSP.
    #[error("indefinite length at offset {0}")]
    IndefiniteLength(usize),
    /// A length field longer than 4 bytes.
    #[error("length field too long at offset {0}")]
    LengthTooLong(usize),
    /// The expected tag was not found.
    #[error("expected tag {expected:#X}, found {found:#X}")]
    UnexpectedTag {
        /// Tag the caller asked for.
        expected: u32,
        /// Tag actually present.
        found: u32,
    },
    /// A required child element is absent.
    #[error("missing element with tag {0:#X}")]
    Missing(u32),
    /// Bytes left over after the outermost TLV.
    #[error("{0} trailing byte(s) after TLV")]
    TrailingBytes(usize),
}

/// One BER-TLV element borrowed from a larger buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag as the big-endian integer of its encoded bytes.
    pub tag: u32,
    /// The whole element: tag, length and value, exactly as received.
    pub raw: &'a [u8],
    /// The value bytes only.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Parses the first TLV of `input`, returning it and the rest of the input.
    pub fn parse(input: &'a [u8]) -> Result<(Tlv<'a>, &'a [u8]), TlvError> {
        let (tag, tag_len) = read_tag(input)?;
        let (len, len_len) = read_length(&input[tag_len..], tag_len)?;
        let header = tag_len + len_len;
        let total = header
            .checked_add(len)
            .ok_or(TlvError::LengthTooLong(tag_len))?;
        if input.len() < total {
            return Err(TlvError::Truncated {
                offset: input.len(),
                needed: total - input.len(),
            });
        }
        let tlv = Tlv {
            tag,
            raw: &input[..total],
            value: &input[header..total],
        };
        Ok((tlv, &input[total..]))
    }

    /// Parses `input` as exactly one TLV, with nothing after it.
    pub fn parse_exact(input: &'a [u8]) -> Result<Tlv<'a>, TlvError> {
        let (tlv, rest) = Self::parse(input)?;
        if !rest.is_empty() {
            return Err(TlvError::TrailingBytes(rest.len()));
        }
        Ok(tlv)
    }

    /// Parses `input` as exactly one TLV with the given tag.
    pub fn parse_tagged(input: &'a [u8], tag: u32) -> Result<Tlv<'a>, TlvError> {
        let tlv = Self::parse_exact(input)?;
        tlv.expect_tag(tag)?;
        Ok(tlv)
    }

    /// Returns an error unless this element carries `tag`.
    pub fn expect_tag(&self, tag: u32) -> Result<(), TlvError> {
        if self.tag == tag {
            Ok(())
        } else {
            Err(TlvError::UnexpectedTag {
                expected: tag,
                found: self.tag,
            })
        }
    }

    /// Whether the tag's first byte has the constructed bit set.
    pub fn is_constructed(&self) -> bool {
        self.raw.first().is_some_and(|b| b & 0x20 != 0)
    }

    /// The header (tag and length bytes) of this element.
    pub fn header(&self) -> &'a [u8] {
        &self.raw[..self.raw.len() - self.value.len()]
    }

    /// Iterates over the children of a constructed element.
    pub fn children(&self) -> TlvIter<'a> {
        TlvIter::new(self.value)
    }

    /// The first child with `tag`, if any.
    pub fn find(&self, tag: u32) -> Result<Option<Tlv<'a>>, TlvError> {
        for child in self.children() {
            let child = child?;
            if child.tag == tag {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// The first child with `tag`, or [`TlvError::Missing`].
    pub fn require(&self, tag: u32) -> Result<Tlv<'a>, TlvError> {
        self.find(tag)?.ok_or(TlvError::Missing(tag))
    }
}

/// Iterator over consecutive TLVs in a buffer; stops after the first error.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TlvIter<'a> {
    /// Iterates over the TLVs that make up `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            rest: input,
            failed: false,
        }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match Tlv::parse(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The header of the TLV at the start of `input`: its tag, the length of
/// tag and length fields, and the length of the value. The value need not
/// be there yet, so it also reads TLVs that arrive in pieces (a BPP over
/// STORE DATA blocks).
pub fn read_header(input: &[u8]) -> Result<(u32, usize, usize), TlvError> {
    let (tag, tag_len) = read_tag(input)?;
    let (len, len_len) = read_length(&input[tag_len..], tag_len)?;
    Ok((tag, tag_len + len_len, len))
}

/// The tag at the start of `input` (as [`Tlv::tag`] gives it) and its
/// length in bytes (at most 4).
pub fn read_tag(input: &[u8]) -> Result<(u32, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated {
        offset: 0,
        needed: 1,
    })?;
    let mut tag = u32::from(first);
    if first & 0x1F != 0x1F {
        return Ok((tag, 1));
    }
    let mut i = 1;
    loop {
        let b = *input.get(i).ok_or(TlvError::Truncated {
            offset: i,
            needed: 1,
        })?;
        if i >= 4 {
            return Err(TlvError::TagTooLong(0));
        }
        tag = (tag << 8) | u32::from(b);
        i += 1;
        if b & 0x80 == 0 {
            return Ok((tag, i));
        }
    }
}

fn read_length(input: &[u8], base: usize) -> Result<(usize, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated {
        offset: base,
        needed: 1,
    })?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    if first == 0x80 {
        return Err(TlvError::IndefiniteLength(base));
    }
    let n = usize::from(first & 0x7F);
    if n > 4 {
        return Err(TlvError::LengthTooLong(base));
    }
    if input.len() < 1 + n {
        return Err(TlvError::Truncated {
            offset: base + input.len(),
            needed: 1 + n - input.len(),
        });
    }
    let len = input[1..=n]
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok((len, 1 + n))
}

/// Appends the encoded `tag` (as returned in [`Tlv::tag`]) to `out`.
pub fn write_tag(out: &mut Vec<u8>, tag: u32) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a DER definite length to `out`.
pub fn write_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends a complete TLV (`tag`, DER length, `value`) to `out`.
pub fn write_tlv(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    write_tag(out, tag);
    write_length(out, value.len());
    out.extend_from_slice(value);
}

/// Returns a complete TLV (`tag`, DER length, `value`) as a new vector.
pub fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    write_tlv(&mut out, tag, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_of_tlvs_that_are_not_all_there_yet() {
        assert_eq!(
            read_header(&[0xBF, 0x36, 0x82, 0x32, 0x7B]),
            Ok((0xBF36, 5, 0x327B))
        );
        assert_eq!(read_header(&[0xA3, 0x00]), Ok((0xA3, 2, 0)));
        assert_eq!(read_header(&[0x86, 0x81, 0x80, 0x01]), Ok((0x86, 3, 0x80)));
        for truncated in [&[0xBF][..], &[0x86], &[0x86, 0x82, 0x01]] {
            assert!(matches!(
                read_header(truncated),
                Err(TlvError::Truncated { .. })
            ));
        }
        assert!(read_header(&[0x86, 0x80]).is_err(), "indefinite length");
        assert!(
            read_header(&[0xBF, 0xFF, 0xFF, 0xFF, 0x01, 0x00]).is_err(),
            "5-byte tag"
        );
        assert_eq!(read_tag(&[0x9F, 0x70, 0x5A]), Ok((0x9F70, 2)));
    }

    #[test]
    fn parses_multibyte_tag_and_long_length() {
        let mut buf = Vec::new();
        write_tlv(&mut buf, 0xBF36, &[0xAB; 300]);
        assert_eq!(&buf[..5], &[0xBF, 0x36, 0x82, 0x01, 0x2C]);
        let t = Tlv::parse_exact(&buf).unwrap();
        assert_eq!(t.tag, 0xBF36);
        assert_eq!(t.value.len(), 300);
        assert!(t.is_constructed());
        assert_eq!(t.header(), &buf[..5]);
    }

    #[test]
    fn children_and_find() {
        let inner = [tlv(0x80, &[1]), tlv(0x5F37, &[2; 64])].concat();
        let outer = tlv(0xBF38, &inner);
        let t = Tlv::parse_tagged(&outer, 0xBF38).unwrap();
        assert_eq!(t.children().count(), 2);
        assert_eq!(t.require(0x5F37).unwrap().value, &[2; 64]);
        assert_eq!(t.require(0x81), Err(TlvError::Missing(0x81)));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(Tlv::parse(&[]), Err(TlvError::Truncated { .. })));
        assert!(matches!(
            Tlv::parse(&[0xBF]),
            Err(TlvError::Truncated { .. })
        ));
        assert!(matches!(
            Tlv::parse(&[0x30, 0x80, 0, 0]),
            Err(TlvError::IndefiniteLength(_))
        ));
        assert!(matches!(
            Tlv::parse(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(TlvError::LengthTooLong(_))
        ));
        assert!(matches!(
            Tlv::parse(&[0x30, 0x05, 1]),
            Err(TlvError::Truncated { .. })
        ));
        assert!(matches!(
            Tlv::parse(&[0xBF, 0xFF, 0xFF, 0xFF, 0x01, 0x00]),
            Err(TlvError::TagTooLong(_))
        ));
        assert_eq!(
            Tlv::parse_exact(&[0x80, 0x00, 0x00]),
            Err(TlvError::TrailingBytes(1))
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((t, _)) = Tlv::parse(&bytes) {
                for child in t.children() { let _ = child; }
            }
        }

        #[test]
        fn write_then_parse_round_trips(tag in prop_oneof![Just(0x80u32), Just(0x5A), Just(0xBF25), Just(0x5F49), Just(0xBF8148)],
                                        value in proptest::collection::vec(any::<u8>(), 0..600)) {
            let buf = tlv(tag, &value);
            let t = Tlv::parse_exact(&buf).unwrap();
            prop_assert_eq!(t.tag, tag);
            prop_assert_eq!(t.value, &value[..]);
        }
    }
}
