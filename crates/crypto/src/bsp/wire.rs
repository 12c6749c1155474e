//! Segment framing (tag, BER length, MAC position) and the
//! `ReplaceSessionKeys` (`BF26`) payload.

use super::MAC_LEN;
use crate::error::{Error, Result};
use crate::kdf::SessionKeys;

/// Tag of `ReplaceSessionKeysRequest` (`[APPLICATION 38]`, constructed).
pub const TAG_REPLACE_SESSION_KEYS: u16 = 0xBF26;

/// Encodes `ReplaceSessionKeysRequest`:
/// `BF26 33 { 80 10 initialMacChainingValue, 81 10 ppkEnc, 82 10 ppkCmac }`.
///
/// This is the plaintext of the `87` segment inside `A2`.
pub fn encode_replace_session_keys(ppk: &SessionKeys) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(3 + 3 * 18));
    out.extend_from_slice(&[0xBF, 0x26, 3 * 18]);
    for (tag, value) in [
        (0x80, &ppk.initial_mcv),
        (0x81, &ppk.s_enc),
        (0x82, &ppk.s_mac),
    ] {
        out.extend_from_slice(&[tag, 16]);
        out.extend_from_slice(value);
    }
    out
}

/// Decodes `ReplaceSessionKeysRequest` (see [`encode_replace_session_keys`])
/// into the profile protection keys, returned as [`SessionKeys`]
/// (`initial_mcv`, `s_enc` = PPK-ENC, `s_mac` = PPK-MAC).
pub fn decode_replace_session_keys(bf26: &[u8]) -> Result<SessionKeys> {
    const BAD: Error = Error::MalformedSegment("not a ReplaceSessionKeysRequest (BF26)");
    let (tag, value, rest) = read_tlv(bf26).ok_or(BAD)?;
    if tag != u32::from(TAG_REPLACE_SESSION_KEYS) || !rest.is_empty() {
        return Err(BAD);
    }
    let mut keys = SessionKeys {
        initial_mcv: [0; 16],
        s_enc: [0; 16],
        s_mac: [0; 16],
    };
    let mut input = value;
    for (want, slot) in [
        (0x80, &mut keys.initial_mcv),
        (0x81, &mut keys.s_enc),
        (0x82, &mut keys.s_mac),
    ] {
        let (tag, value, rest) = read_tlv(input).ok_or(BAD)?;
        if tag != want || value.len() != 16 {
            return Err(BAD);
        }
        slot.copy_from_slice(value);
        input = rest;
    }
    if !input.is_empty() {
        return Err(BAD);
    }
    Ok(keys)
}

/// A segment split into its parts, borrowing the input.
pub(super) struct ParsedSegment<'a> {
    pub(super) tag: u8,
    header_len: usize,
    value: &'a [u8],
}

impl<'a> ParsedSegment<'a> {
    /// The data and the 8-byte C-MAC.
    pub(super) fn data_and_mac(&self) -> (&'a [u8], &'a [u8]) {
        self.value.split_at(self.value.len() - MAC_LEN)
    }

    /// Offset of the C-MAC within the whole segment.
    pub(super) fn mac_start(&self) -> usize {
        self.header_len + self.value.len() - MAC_LEN
    }
}

/// Parses `tag || length || value` where the whole segment is exactly the
/// input, at most `max_len` bytes, with a value long enough to hold a C-MAC.
pub(super) fn parse_segment(segment: &[u8], max_len: usize) -> Result<ParsedSegment<'_>> {
    if segment.len() > max_len {
        return Err(Error::SegmentTooLong {
            len: segment.len(),
            max: max_len,
        });
    }
    let (&tag, after_tag) = segment
        .split_first()
        .ok_or(Error::MalformedSegment("empty"))?;
    check_tag(tag).map_err(|_| Error::MalformedSegment("multi-byte tag"))?;
    let (len, len_len) = read_length(after_tag).ok_or(Error::MalformedSegment("bad length"))?;
    let header_len = 1 + len_len;
    let value = &segment[header_len..];
    if value.len() < len {
        return Err(Error::MalformedSegment("truncated"));
    }
    if value.len() > len {
        return Err(Error::MalformedSegment("trailing bytes after segment"));
    }
    if len < MAC_LEN {
        return Err(Error::MalformedSegment("shorter than its MAC"));
    }
    Ok(ParsedSegment {
        tag,
        header_len,
        value,
    })
}

/// Segments use one-byte tags (`86`, `87`, `88`); `xx1F` would start a
/// multi-byte tag and cannot be written as one byte.
pub(super) fn check_tag(tag: u8) -> Result<()> {
    if tag & 0x1F == 0x1F {
        return Err(Error::InvalidParameter(
            "segment tag must be a one-byte BER tag",
        ));
    }
    Ok(())
}

/// Length of `plain` after `80 00..` padding to whole AES blocks.
pub(super) fn padded_len(plain_len: usize) -> usize {
    (plain_len / 16 + 1) * 16
}

/// Whole segment length for an encrypted segment carrying `plain_len` bytes.
pub(super) fn encrypted_segment_len(plain_len: usize) -> usize {
    segment_len(padded_len(plain_len) + MAC_LEN)
}

/// Whole segment length for a MAC-only segment carrying `plain_len` bytes.
pub(super) fn mac_only_segment_len(plain_len: usize) -> usize {
    segment_len(plain_len.saturating_add(MAC_LEN))
}

fn segment_len(value_len: usize) -> usize {
    value_len.saturating_add(1 + length_len(value_len))
}

fn length_len(value_len: usize) -> usize {
    match value_len {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x1_0000 => 3,
        _ => 4,
    }
}

/// Appends `tag` and the DER length of `value_len` (callers have checked it
/// is below 1020).
pub(super) fn write_header(out: &mut Vec<u8>, tag: u8, value_len: usize) {
    out.push(tag);
    match value_len {
        0..0x80 => out.push(value_len as u8),
        0x80..0x100 => out.extend_from_slice(&[0x81, value_len as u8]),
        _ => out.extend_from_slice(&[0x82, (value_len >> 8) as u8, value_len as u8]),
    }
}

/// Reads a BER definite length of at most two bytes; returns (length, bytes used).
fn read_length(input: &[u8]) -> Option<(usize, usize)> {
    match *input {
        [n, ..] if n < 0x80 => Some((usize::from(n), 1)),
        [0x81, n, ..] => Some((usize::from(n), 2)),
        [0x82, hi, lo, ..] => Some(((usize::from(hi) << 8) | usize::from(lo), 3)),
        _ => None,
    }
}

/// Reads one TLV with a one- or two-byte tag; returns (tag, value, rest).
fn read_tlv(input: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let (tag, tag_len) = match *input {
        [first, second, ..] if first & 0x1F == 0x1F && second & 0x80 == 0 => {
            ((u32::from(first) << 8) | u32::from(second), 2)
        }
        [first, ..] if first & 0x1F != 0x1F => (u32::from(first), 1),
        _ => return None,
    };
    let (len, len_len) = read_length(&input[tag_len..])?;
    let start = tag_len + len_len;
    let end = start.checked_add(len)?;
    let value = input.get(start..end)?;
    Some((tag, value, &input[end..]))
}
