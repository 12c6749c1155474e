//! BSP: protection of Bound Profile Package segments (GlobalPlatform SCP03t as
//! profiled by SGP.22).
//!
//! A segment is `tag || length || data || C-MAC` where, for encrypted
//! segments, `data = AES-128-CBC(S-ENC, ICV, plain || 80 00..)` with
//! `ICV = AES(S-ENC, block counter as 16 big-endian bytes)`; MAC-only segments
//! carry `plain` as is. `C-MAC` is the first 8 bytes of
//! `AES-CMAC(S-MAC, MCV || tag || length || data)` and the full CMAC becomes
//! the next MAC chaining value (MCV). The block counter starts at 1 and
//! advances on every segment, MAC-only ones included. A segment is at most
//! [`MAX_SEGMENT_LEN`] (1020) bytes.
//!
//! [`BspEncryptor`] is the SM-DP+ side and [`BspDecryptor`] the eUICC side;
//! both carry the same state (keys, MCV, counter), which advances only when an
//! operation succeeds. After `ReplaceSessionKeys` both switch to the profile
//! protection keys with [`BspEncryptor::replace_session_keys`] /
//! [`BspDecryptor::replace_session_keys`] (the counter restarts at 1).

mod state;
mod wire;

use crate::error::{Error, Result};
use crate::kdf::SessionKeys;
use state::State;

pub use wire::{
    TAG_REPLACE_SESSION_KEYS, decode_replace_session_keys, encode_replace_session_keys,
};

/// Largest protected segment: tag, length, data and C-MAC together.
pub const MAX_SEGMENT_LEN: usize = 1020;
/// Length of the C-MAC appended to each segment.
pub const MAC_LEN: usize = 8;
/// Largest plaintext that fits one encrypted segment: 1007 bytes pad to 1008,
/// plus the 8-byte MAC gives a 1016-byte value, behind `tag 82 03 F8`.
pub const MAX_ENCRYPTED_PLAIN_LEN: usize = 1007;
/// Largest data that fits one MAC-only segment (1008 + 8-byte MAC = 1016).
pub const MAX_MAC_ONLY_PLAIN_LEN: usize = 1008;
/// Segment size some SM-DP+ implementations send despite the 1020-byte limit:
/// osmo-smdpp (pySim) splits the plaintext into 1008-byte chunks before
/// padding, so full encrypted segments come out as `86 82 04 08` + 1024 bytes
/// of ciphertext + MAC = 1036 bytes. A receiver that must accept them can
/// raise its limit with [`BspDecryptor::with_max_segment_len`].
pub const LENIENT_MAX_SEGMENT_LEN: usize = 1036;

/// Segment tag of `ConfigureISDP` and `ReplaceSessionKeys` (in `A0`, `A2`).
pub const TAG_CONFIGURE_ISDP_SEGMENT: u8 = 0x87;
/// Segment tag of `StoreMetadata` (in `A1`, MAC only).
pub const TAG_STORE_METADATA_SEGMENT: u8 = 0x88;
/// Segment tag of profile element segments (in `A3`).
pub const TAG_PROFILE_SEGMENT: u8 = 0x86;

/// A decrypted and verified segment.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptedSegment {
    /// The segment's tag (`86`, `87`, ...).
    pub tag: u8,
    /// The plaintext with the padding removed.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for DecryptedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedSegment")
            .field("tag", &format_args!("{:#04X}", self.tag))
            .field("len", &self.data.len())
            .finish()
    }
}

/// A verified MAC-only segment, borrowing its data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSegment<'a> {
    /// The segment's tag (`88` for StoreMetadata).
    pub tag: u8,
    /// The data, without the C-MAC.
    pub data: &'a [u8],
}

/// The sending side (SM-DP+): protects segments in order.
pub struct BspEncryptor {
    state: State,
}

impl BspEncryptor {
    /// Starts a session with the keys from [`crate::kdf::derive_session_keys`].
    pub fn new(keys: &SessionKeys) -> Self {
        Self {
            state: State::new(keys),
        }
    }

    /// Encrypts and MACs one segment, returning `tag || length || data || C-MAC`.
    ///
    /// Fails with [`Error::SegmentTooLong`] if `plain` is longer than
    /// [`MAX_ENCRYPTED_PLAIN_LEN`]; use [`Self::encrypt_and_mac_segments`] to split.
    pub fn encrypt_and_mac(&mut self, tag: u8, plain: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(wire::encrypted_segment_len(plain.len()));
        self.encrypt_and_mac_into(tag, plain, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::encrypt_and_mac`], appending the segment to `out`.
    pub fn encrypt_and_mac_into(&mut self, tag: u8, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.state.encrypt_and_mac_into(tag, plain, out)
    }

    /// MACs one segment without encrypting it (StoreMetadata).
    ///
    /// Fails with [`Error::SegmentTooLong`] if `plain` is longer than
    /// [`MAX_MAC_ONLY_PLAIN_LEN`].
    pub fn mac_only(&mut self, tag: u8, plain: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(wire::mac_only_segment_len(plain.len()));
        self.mac_only_into(tag, plain, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::mac_only`], appending the segment to `out`.
    pub fn mac_only_into(&mut self, tag: u8, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.state.mac_only_into(tag, plain, out)
    }

    /// Splits `plain` into the fewest encrypted segments (each carrying up to
    /// [`MAX_ENCRYPTED_PLAIN_LEN`] bytes) and protects them in order.
    /// Empty input gives one segment.
    pub fn encrypt_and_mac_segments(&mut self, tag: u8, plain: &[u8]) -> Result<Vec<Vec<u8>>> {
        chunks(plain, MAX_ENCRYPTED_PLAIN_LEN)
            .map(|chunk| self.encrypt_and_mac(tag, chunk))
            .collect()
    }

    /// Bytes [`Self::encrypt_and_mac_segments_into`] appends for `plain_len`
    /// bytes of input, so that a caller can write the length of what
    /// encloses the segments (the BPP's `A3` and `BF36`) before them and the
    /// segments straight into their final buffer.
    pub fn encrypted_segments_len(plain_len: usize) -> usize {
        let full = plain_len / MAX_ENCRYPTED_PLAIN_LEN;
        let rest = plain_len % MAX_ENCRYPTED_PLAIN_LEN;
        let last = if rest > 0 || full == 0 {
            wire::encrypted_segment_len(rest)
        } else {
            0
        };
        full * wire::encrypted_segment_len(MAX_ENCRYPTED_PLAIN_LEN) + last
    }

    /// Like [`Self::encrypt_and_mac_segments`], appending the segments back to
    /// back to `out`; returns how many were written.
    pub fn encrypt_and_mac_segments_into(
        &mut self,
        tag: u8,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let count = plain.len().div_ceil(MAX_ENCRYPTED_PLAIN_LEN).max(1);
        out.reserve(Self::encrypted_segments_len(plain.len()));
        for chunk in chunks(plain, MAX_ENCRYPTED_PLAIN_LEN) {
            self.encrypt_and_mac_into(tag, chunk, out)?;
        }
        Ok(count)
    }

    /// Splits `plain` into MAC-only segments of up to [`MAX_MAC_ONLY_PLAIN_LEN`] bytes.
    pub fn mac_only_segments(&mut self, tag: u8, plain: &[u8]) -> Result<Vec<Vec<u8>>> {
        chunks(plain, MAX_MAC_ONLY_PLAIN_LEN)
            .map(|chunk| self.mac_only(tag, chunk))
            .collect()
    }

    /// Switches to the profile protection keys sent in `ReplaceSessionKeys`
    /// (PPK-ENC, PPK-MAC, initial MCV); the block counter restarts at 1.
    pub fn replace_session_keys(&mut self, ppk: &SessionKeys) {
        self.state = State::new(ppk);
    }

    /// The block counter the next segment will use.
    pub fn block_counter(&self) -> u128 {
        self.state.counter()
    }
}

impl std::fmt::Debug for BspEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BspEncryptor")
            .field("block_counter", &self.state.counter())
            .finish_non_exhaustive()
    }
}

/// The receiving side (eUICC): verifies and opens segments in order.
pub struct BspDecryptor {
    state: State,
    max_segment_len: usize,
}

impl BspDecryptor {
    /// Starts a session with the keys from [`crate::kdf::derive_session_keys`],
    /// refusing segments longer than [`MAX_SEGMENT_LEN`].
    pub fn new(keys: &SessionKeys) -> Self {
        Self {
            state: State::new(keys),
            max_segment_len: MAX_SEGMENT_LEN,
        }
    }

    /// Accepts segments up to `max` bytes instead of [`MAX_SEGMENT_LEN`]
    /// (for example [`LENIENT_MAX_SEGMENT_LEN`] to interoperate with
    /// osmo-smdpp). The sending side always keeps to 1020.
    pub fn with_max_segment_len(mut self, max: usize) -> Self {
        self.max_segment_len = max;
        self
    }

    /// Verifies the C-MAC of an encrypted segment and decrypts it.
    ///
    /// Errors: [`Error::MalformedSegment`] (not one well-formed TLV),
    /// [`Error::SegmentTooLong`], [`Error::MacMismatch`] (tampered, wrong key,
    /// out of order), [`Error::BadPadding`]. On error the state does not advance.
    pub fn verify_and_decrypt(&mut self, segment: &[u8]) -> Result<DecryptedSegment> {
        let mut data = Vec::with_capacity(segment.len());
        let tag = self.verify_and_decrypt_into(segment, &mut data)?;
        Ok(DecryptedSegment { tag, data })
    }

    /// Like [`Self::verify_and_decrypt`], appending the plaintext to `out` and
    /// returning the tag. On error `out` is left as it was.
    pub fn verify_and_decrypt_into(&mut self, segment: &[u8], out: &mut Vec<u8>) -> Result<u8> {
        self.state
            .verify_and_decrypt_into(segment, self.max_segment_len, out)
    }

    /// Verifies the C-MAC of a MAC-only segment and returns its data.
    pub fn verify_mac_only<'a>(&mut self, segment: &'a [u8]) -> Result<VerifiedSegment<'a>> {
        self.state.verify_mac_only(segment, self.max_segment_len)
    }

    /// Switches to the profile protection keys received in
    /// `ReplaceSessionKeys`; the block counter restarts at 1.
    pub fn replace_session_keys(&mut self, ppk: &SessionKeys) {
        self.state = State::new(ppk);
    }

    /// The block counter the next segment must use.
    pub fn block_counter(&self) -> u128 {
        self.state.counter()
    }
}

impl std::fmt::Debug for BspDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BspDecryptor")
            .field("block_counter", &self.state.counter())
            .finish_non_exhaustive()
    }
}

/// Chunks of at most `size` bytes; an empty input gives one empty chunk.
fn chunks(plain: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let empty = plain.is_empty().then_some(plain);
    plain.chunks(size).chain(empty)
}

/// Returns an error unless `segment` is at most [`MAX_SEGMENT_LEN`] bytes.
fn check_len(len: usize) -> Result<()> {
    if len > MAX_SEGMENT_LEN {
        return Err(Error::SegmentTooLong {
            len,
            max: MAX_SEGMENT_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
