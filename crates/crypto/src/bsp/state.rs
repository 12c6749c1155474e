//! The SCP03t chaining state shared by both directions: keys, MAC chaining
//! value and block counter, and the per-segment AES work (aws-lc-rs).
//!
//! The AES and CMAC keys are expanded on the first segment rather than in the
//! constructor, so that starting a session cannot fail; a backend failure
//! (which aws-lc reports only for allocation failures) surfaces as
//! [`Error::Backend`] from the segment operation.
//!
//! The CMAC (RFC 4493) is computed here from aws-lc's AES-CBC rather than
//! with aws-lc's CMAC API, which makes one EVP cipher call per 16-byte
//! block: a CMAC is the last block of an AES-CBC encryption (IV zero) of the
//! message whose last block is masked with a subkey, so a whole segment
//! takes one CBC call over a scratch copy (hardware AES where the CPU has
//! it) and one for the last block.

use aws_lc_rs::cipher::{
    AES_128, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use zeroize::{Zeroize, Zeroizing};

use super::{MAC_LEN, VerifiedSegment, check_len, wire};
use crate::error::{Error, Result};
use crate::kdf::SessionKeys;

/// Which way a state protects segments: the sending side never decrypts,
/// so it does not expand a decryption key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// The SM-DP+: encrypts and MACs.
    Send,
    /// The eUICC: verifies and decrypts.
    Receive,
}

/// MCV, block counter and the keys.
pub(super) struct State {
    keys: Keys,
    mcv: [u8; 16],
    counter: u128,
}

impl State {
    pub(super) fn new(keys: &SessionKeys, direction: Direction) -> Self {
        Self {
            keys: Keys::Pending {
                s_enc: Zeroizing::new(keys.s_enc),
                s_mac: Zeroizing::new(keys.s_mac),
                direction,
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
        let cbc_dec = keys
            .cbc_dec
            .as_ref()
            .ok_or(Error::Backend("no decryption key on the sending side"))?;
        let start = out.len();
        out.extend_from_slice(cipher);
        let plain_len = cbc_dec
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
        direction: Direction,
    },
    Ready(Box<AesKeys>),
}

impl Keys {
    fn ready(&mut self) -> Result<&AesKeys> {
        if let Keys::Pending {
            s_enc,
            s_mac,
            direction,
        } = self
        {
            *self = Keys::Ready(Box::new(AesKeys::new(s_enc, s_mac, *direction)?));
        }
        match self {
            Keys::Ready(keys) => Ok(keys),
            Keys::Pending { .. } => Err(Error::Backend("AES key setup")),
        }
    }
}

/// Expanded keys; aws-lc-rs wipes them when dropped.
struct AesKeys {
    /// AES-CBC encryption under S-ENC: the segments (sending side) and the
    /// ICV (both sides).
    cbc_enc: EncryptingKey,
    /// AES-CBC decryption under S-ENC (receiving side only).
    cbc_dec: Option<DecryptingKey>,
    mac: Cmac,
}

impl AesKeys {
    fn new(s_enc: &[u8; 16], s_mac: &[u8; 16], direction: Direction) -> Result<Self> {
        let setup = |_| Error::Backend("AES key setup");
        let aes = || UnboundCipherKey::new(&AES_128, s_enc).map_err(setup);
        let cbc_dec = match direction {
            Direction::Receive => Some(DecryptingKey::cbc(aes()?).map_err(setup)?),
            Direction::Send => None,
        };
        Ok(Self {
            cbc_enc: EncryptingKey::cbc(aes()?).map_err(setup)?,
            cbc_dec,
            mac: Cmac::new(s_mac)?,
        })
    }

    /// ICV = AES-ECB(S-ENC, counter as 16 big-endian bytes), computed as
    /// the CBC encryption of that one block under a zero IV (the same thing).
    fn icv(&self, counter: u128) -> Result<[u8; 16]> {
        let mut block = counter.to_be_bytes();
        self.cbc_enc
            .less_safe_encrypt(&mut block, EncryptionContext::Iv128([0u8; 16].into()))
            .map_err(|_| Error::Backend("ICV computation"))?;
        Ok(block)
    }

    /// AES-CMAC(S-MAC, MCV || header || data).
    fn cmac(&self, mcv: &[u8; 16], header_and_data: &[u8]) -> Result<[u8; 16]> {
        self.mac.sign(mcv, header_and_data)
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

/// Bytes of the message CBC-encrypted per call: a full segment and its MCV
/// in one go, on the stack.
const CMAC_CHUNK: usize = 1088;

/// AES-128-CMAC (RFC 4493) over aws-lc's AES-CBC.
struct Cmac {
    /// AES-CBC under the MAC key; every call passes its own IV.
    cbc: EncryptingKey,
    /// Subkey K1 (masks a complete last block).
    k1: Zeroizing<[u8; 16]>,
    /// Subkey K2 (masks a padded last block).
    k2: Zeroizing<[u8; 16]>,
}

impl Cmac {
    fn new(key: &[u8; 16]) -> Result<Self> {
        let setup = |_| Error::Backend("AES key setup");
        let cbc = EncryptingKey::cbc(UnboundCipherKey::new(&AES_128, key).map_err(setup)?)
            .map_err(setup)?;
        // L = AES(K, 0^128): one CBC block with a zero IV is one ECB block.
        let mut l = Zeroizing::new([0u8; 16]);
        cbc.less_safe_encrypt(l.as_mut_slice(), EncryptionContext::Iv128([0u8; 16].into()))
            .map_err(setup)?;
        let k1 = Zeroizing::new(double(&l));
        let k2 = Zeroizing::new(double(&k1));
        Ok(Self { cbc, k1, k2 })
    }

    /// The CMAC of `prefix || data` (the MCV and the segment), without
    /// copying them together first.
    fn sign(&self, prefix: &[u8], data: &[u8]) -> Result<[u8; 16]> {
        let failed = |_| Error::Backend("CMAC computation");
        let total = prefix.len() + data.len();
        // The last block is complete (masked with K1) unless the message is
        // empty or ends in a partial block (padded, masked with K2).
        let complete = total > 0 && total.is_multiple_of(16);
        let body_len = if complete {
            total - 16
        } else {
            total / 16 * 16
        };
        let mut scratch = Scratch([0u8; CMAC_CHUNK]);
        let mut chain = [0u8; 16];
        let mut offset = 0;
        while offset < body_len {
            let n = (body_len - offset).min(CMAC_CHUNK);
            let chunk = &mut scratch.0[..n];
            copy_message(prefix, data, offset, chunk);
            self.cbc
                .less_safe_encrypt(chunk, EncryptionContext::Iv128(chain.into()))
                .map_err(failed)?;
            chain.copy_from_slice(&chunk[n - 16..]);
            offset += n;
        }
        let mut last = [0u8; 16];
        let rest = total - body_len;
        copy_message(prefix, data, body_len, &mut last[..rest]);
        let mask = if complete {
            &self.k1
        } else {
            last[rest] = 0x80;
            &self.k2
        };
        for (b, m) in last.iter_mut().zip(mask.iter()) {
            *b ^= m;
        }
        self.cbc
            .less_safe_encrypt(&mut last, EncryptionContext::Iv128(chain.into()))
            .map_err(failed)?;
        chain.zeroize();
        Ok(last)
    }
}

/// The scratch copy of a CMAC's message, wiped when dropped as one fill
/// behind zeroize's optimisation barrier (`[u8]::zeroize`); a
/// `Zeroizing<[u8; N]>` writes it byte by byte through volatile writes,
/// which cost a third of the CMAC itself on every segment.
struct Scratch([u8; CMAC_CHUNK]);

impl Drop for Scratch {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

/// Multiplication by x in GF(2^128) as RFC 4493 defines it for the subkeys:
/// shift left by one bit, and if a bit fell out, XOR `0x87` into the last byte.
fn double(block: &[u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(*block);
    // All ones when the top bit is set, without a branch on key material.
    let carry = 0u128.wrapping_sub(v >> 127);
    ((v << 1) ^ (carry & 0x87)).to_be_bytes()
}

/// Copies `out.len()` bytes of `prefix || data`, starting at `offset`, into `out`.
fn copy_message(prefix: &[u8], data: &[u8], offset: usize, out: &mut [u8]) {
    let mut out = out;
    let mut offset = offset;
    if offset < prefix.len() {
        let n = (prefix.len() - offset).min(out.len());
        let (head, tail) = out.split_at_mut(n);
        head.copy_from_slice(&prefix[offset..offset + n]);
        out = tail;
        offset += n;
        if out.is_empty() {
            return;
        }
    }
    let start = offset - prefix.len();
    out.copy_from_slice(&data[start..start + out.len()]);
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
    use super::{Cmac, unpad_len};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4493 section 4: AES-128 subkeys and the four example MACs, each
    /// message also split at every point between the prefix and the data.
    #[test]
    fn cmac_matches_rfc_4493() {
        let key: [u8; 16] = hex("2b7e1516 28aed2a6 abf71588 09cf4f3c")
            .try_into()
            .unwrap();
        let cmac = Cmac::new(&key).unwrap();
        assert_eq!(cmac.k1.to_vec(), hex("fbeed618 35713366 7c85e08f 7236a8de"));
        assert_eq!(cmac.k2.to_vec(), hex("f7ddac30 6ae266cc f90bc11e e46d513b"));
        let message = hex(
            "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51
             30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710",
        );
        let cases = [
            (0, "bb1d6929 e9593728 7fa37d12 9b756746"),
            (16, "070a16b4 6b4d4144 f79bdd9d d04a287c"),
            (40, "dfa66747 de9ae630 30ca3261 1497c827"),
            (64, "51f0bebf 7e3b9d92 fc497417 79363cfe"),
        ];
        for (len, mac) in cases {
            let m = &message[..len];
            for split in 0..=len {
                let (prefix, data) = m.split_at(split);
                assert_eq!(
                    cmac.sign(prefix, data).unwrap().to_vec(),
                    hex(mac),
                    "length {len}, split {split}"
                );
            }
        }
    }

    /// Messages longer than one scratch chunk chain across CBC calls: the
    /// result equals aws-lc's own CMAC.
    #[test]
    fn cmac_matches_aws_lc_across_chunks() {
        let key = [0x42u8; 16];
        let cmac = Cmac::new(&key).unwrap();
        let reference = aws_lc_rs::cmac::Key::new(aws_lc_rs::cmac::AES_128, &key).unwrap();
        let message: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [
            1, 15, 16, 17, 1087, 1088, 1089, 1104, 1105, 2176, 2177, 3000,
        ] {
            let m = &message[..len];
            let expected = aws_lc_rs::cmac::sign(&reference, m).unwrap();
            for split in [0, 1, 16.min(len), len] {
                let (prefix, data) = m.split_at(split);
                assert_eq!(
                    cmac.sign(prefix, data).unwrap().as_slice(),
                    expected.as_ref(),
                    "length {len}, split {split}"
                );
            }
        }
    }

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
