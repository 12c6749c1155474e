//! The SCP03t chaining state shared by both directions: keys, MAC chaining
//! value and block counter, and the per-segment AES work (aws-lc-rs).
//!
//! The AES and CMAC keys are expanded on the first segment rather than in the
//! constructor, so that starting a session cannot fail; a backend failure
//! (which aws-lc reports only for allocation failures) surfaces as
//! [`Error::Backend`] from the segment operation.

use aws_lc_rs::cipher::{
    AES_128, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::cmac;
use zeroize::{Zeroize, Zeroizing};

use super::{MAC_LEN, VerifiedSegment, check_len, wire};
use crate::error::{Error, Result};
use crate::kdf::SessionKeys;

/// MCV, block counter and the keys.
pub(super) struct State {
    keys: Keys,
    mcv: [u8; 16],
    counter: u128,
}

impl State {
    pub(super) fn new(keys: &SessionKeys) -> Self {
        Self {
            keys: Keys::Pending {
                s_enc: Zeroizing::new(keys.s_enc),
                s_mac: Zeroizing::new(keys.s_mac),
            },
            mcv: keys.initial_mcv,
            counter: 1,
        }
    }

    pub(super) fn counter(&self) -> u128 {
        self.counter
    }

    pub(super) fn encrypt_and_mac_into(
        &mut self,
        tag: u8,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        wire::check_tag(tag)?;
        let seg_len = wire::encrypted_segment_len(plain.len());
        check_len(seg_len)?;
        let next_counter = self.next_counter()?;
        let keys = self.keys.ready()?;
        let padded_len = wire::padded_len(plain.len());
        let start = out.len();
        out.reserve(seg_len);
        wire::write_header(out, tag, padded_len + MAC_LEN);
        let body = out.len();
        out.extend_from_slice(plain);
        // ISO/IEC 7816-4 padding: 80, then zeros up to the block boundary.
        out.push(0x80);
        out.resize(body + padded_len, 0);
        let protected = keys.icv(self.counter).and_then(|icv| {
            keys.cbc_enc
                .less_safe_encrypt(&mut out[body..], EncryptionContext::Iv128(icv.into()))
                .map_err(|_| Error::Backend("CBC encryption"))?;
            keys.cmac(&self.mcv, &out[start..])
        });
        match protected {
            Ok(full) => {
                out.extend_from_slice(&full[..MAC_LEN]);
                self.advance(full, next_counter);
                Ok(())
            }
            Err(e) => {
                out[start..].zeroize();
                out.truncate(start);
                Err(e)
            }
        }
    }

    pub(super) fn mac_only_into(&mut self, tag: u8, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
        wire::check_tag(tag)?;
        let seg_len = wire::mac_only_segment_len(plain.len());
        check_len(seg_len)?;
        let next_counter = self.next_counter()?;
        let keys = self.keys.ready()?;
        let start = out.len();
        out.reserve(seg_len);
        wire::write_header(out, tag, plain.len() + MAC_LEN);
        out.extend_from_slice(plain);
        match keys.cmac(&self.mcv, &out[start..]) {
            Ok(full) => {
                out.extend_from_slice(&full[..MAC_LEN]);
                self.advance(full, next_counter);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    pub(super) fn verify_and_decrypt_into(
        &mut self,
        segment: &[u8],
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<u8> {
        let parsed = wire::parse_segment(segment, max_len)?;
        let (cipher, _) = parsed.data_and_mac();
        if cipher.is_empty() || cipher.len() % 16 != 0 {
            return Err(Error::BadPadding);
        }
        let next_counter = self.next_counter()?;
        let keys = self.keys.ready()?;
        let full = keys.verify_mac(&self.mcv, segment, parsed.mac_start())?;
        let icv = keys.icv(self.counter)?;
        let start = out.len();
        out.extend_from_slice(cipher);
        let plain_len = keys
            .cbc_dec
            .decrypt(&mut out[start..], DecryptionContext::Iv128(icv.into()))
            .map_err(|_| Error::Backend("CBC decryption"))
            .and_then(|plain| unpad_len(plain).ok_or(Error::BadPadding));
        match plain_len {
            Ok(len) => {
                out.truncate(start + len);
                self.advance(full, next_counter);
                Ok(parsed.tag)
            }
            Err(e) => {
                out[start..].zeroize();
                out.truncate(start);
                Err(e)
            }
        }
    }

    pub(super) fn verify_mac_only<'a>(
        &mut self,
        segment: &'a [u8],
        max_len: usize,
    ) -> Result<VerifiedSegment<'a>> {
        let parsed = wire::parse_segment(segment, max_len)?;
        let next_counter = self.next_counter()?;
        let keys = self.keys.ready()?;
        let full = keys.verify_mac(&self.mcv, segment, parsed.mac_start())?;
        self.advance(full, next_counter);
        let (data, _) = parsed.data_and_mac();
        Ok(VerifiedSegment {
            tag: parsed.tag,
            data,
        })
    }

    fn next_counter(&self) -> Result<u128> {
        self.counter.checked_add(1).ok_or(Error::CounterExhausted)
    }

    fn advance(&mut self, full_mac: [u8; 16], next_counter: u128) {
        self.mcv = full_mac;
        self.counter = next_counter;
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.mcv.zeroize();
    }
}

/// Key bytes until the first segment, expanded aws-lc-rs keys after.
enum Keys {
    Pending {
        s_enc: Zeroizing<[u8; 16]>,
        s_mac: Zeroizing<[u8; 16]>,
    },
    Ready(Box<AesKeys>),
}

impl Keys {
    fn ready(&mut self) -> Result<&AesKeys> {
        if let Keys::Pending { s_enc, s_mac } = self {
            *self = Keys::Ready(Box::new(AesKeys::new(s_enc, s_mac)?));
        }
        match self {
            Keys::Ready(keys) => Ok(keys),
            Keys::Pending { .. } => Err(Error::Backend("AES key setup")),
        }
    }
}

/// Expanded keys; aws-lc-rs wipes them when dropped.
struct AesKeys {
    /// AES-ECB under S-ENC, for the ICV.
    icv: EncryptingKey,
    cbc_enc: EncryptingKey,
    cbc_dec: DecryptingKey,
    mac: cmac::Key,
}

impl AesKeys {
    fn new(s_enc: &[u8; 16], s_mac: &[u8; 16]) -> Result<Self> {
        let setup = |_| Error::Backend("AES key setup");
        let aes = || UnboundCipherKey::new(&AES_128, s_enc).map_err(setup);
        Ok(Self {
            icv: EncryptingKey::ecb(aes()?).map_err(setup)?,
            cbc_enc: EncryptingKey::cbc(aes()?).map_err(setup)?,
            cbc_dec: DecryptingKey::cbc(aes()?).map_err(setup)?,
            mac: cmac::Key::new(cmac::AES_128, s_mac).map_err(setup)?,
        })
    }

    /// ICV = AES-ECB(S-ENC, counter as 16 big-endian bytes).
    fn icv(&self, counter: u128) -> Result<[u8; 16]> {
        let mut block = counter.to_be_bytes();
        self.icv
            .less_safe_encrypt(&mut block, EncryptionContext::None)
            .map_err(|_| Error::Backend("ICV computation"))?;
        Ok(block)
    }

    /// AES-CMAC(S-MAC, MCV || header || data).
    fn cmac(&self, mcv: &[u8; 16], header_and_data: &[u8]) -> Result<[u8; 16]> {
        let failed = |_| Error::Backend("CMAC computation");
        let mut ctx = cmac::Context::with_key(&self.mac);
        ctx.update(mcv).map_err(failed)?;
        ctx.update(header_and_data).map_err(failed)?;
        let tag = ctx.sign().map_err(failed)?;
        tag.as_ref()
            .try_into()
            .map_err(|_| Error::Backend("CMAC length"))
    }

    /// Recomputes the CMAC over everything before `mac_start` and compares its
    /// first 8 bytes with the segment's C-MAC in constant time.
    fn verify_mac(&self, mcv: &[u8; 16], segment: &[u8], mac_start: usize) -> Result<[u8; 16]> {
        let full = self.cmac(mcv, &segment[..mac_start])?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&full[..MAC_LEN], &segment[mac_start..])
            .map_err(|_| Error::MacMismatch)?;
        Ok(full)
    }
}

/// Length of `padded` without its ISO/IEC 7816-4 padding (`80 00..`, 1 to 16
/// bytes in the last block), or `None` if the padding is malformed.
///
/// Runs only after the C-MAC has verified, so it needs no constant-time care.
fn unpad_len(padded: &[u8]) -> Option<usize> {
    let last_block_start = padded.len().checked_sub(16)?;
    let marker = padded.iter().rposition(|&b| b != 0)?;
    (marker >= last_block_start && padded[marker] == 0x80).then_some(marker)
}

#[cfg(test)]
mod tests {
    use super::unpad_len;

    #[test]
    fn unpadding() {
        let mut block = [0u8; 32];
        block[31] = 0x80;
        assert_eq!(unpad_len(&block), Some(31));
        block[31] = 0;
        block[16] = 0x80;
        assert_eq!(unpad_len(&block), Some(16));
        block[16] = 0;
        block[15] = 0x80; // padding longer than a block
        assert_eq!(unpad_len(&block), None);
        block[15] = 0;
        assert_eq!(unpad_len(&block), None);
        block[20] = 0x81;
        assert_eq!(unpad_len(&block), None);
        assert_eq!(unpad_len(&[]), None);
    }
}
