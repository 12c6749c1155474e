//! The SCP03t chaining state shared by both directions: keys, MAC chaining
//! value and block counter, and the per-segment AES work.
//!
//! A segment needs two chains of AES-128 block operations over the same
//! blocks: CBC under S-ENC and CMAC under S-MAC. Both chains are serial
//! (each block waits for the one before), so they are computed in one pass
//! over the segment, block by block, with the CMAC one block behind the CBC
//! encryption: the two chains do not depend on each other within a step, and
//! the processor runs their AES rounds side by side. The AES block function
//! is the `aes` crate's (AES-NI when the processor has it, else a
//! constant-time software implementation); CMAC is NIST SP 800-38B on top of
//! it, checked against independent implementations and the known-answer
//! vectors in the tests.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::{Zeroize, Zeroizing};

use super::{MAC_LEN, VerifiedSegment, check_len, wire};
use crate::error::{Error, Result};
use crate::kdf::SessionKeys;

/// AES block size.
const BLOCK: usize = 16;

/// MCV, block counter and the keys.
pub(super) struct State {
    keys: Box<AesKeys>,
    mcv: [u8; BLOCK],
    counter: u128,
}

impl State {
    pub(super) fn new(keys: &SessionKeys) -> Self {
        Self {
            keys: Box::new(AesKeys::new(&keys.s_enc, &keys.s_mac)),
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
        let keys = &self.keys;
        let padded_len = wire::padded_len(plain.len());
        let start = out.len();
        out.reserve(seg_len);
        wire::write_header(out, tag, padded_len + MAC_LEN);
        let body = out.len();
        out.extend_from_slice(plain);
        // ISO/IEC 7816-4 padding: 80, then zeros up to the block boundary.
        out.push(0x80);
        out.resize(body + padded_len, 0);

        let mut mac = keys.mac.start(&self.mcv);
        mac.update(&out[start..body]);
        // CBC under S-ENC; the CMAC takes each ciphertext block one step
        // later, so that its AES call does not wait for the current one.
        let mut chain = Zeroizing::new(keys.icv(self.counter));
        let mut behind: Option<[u8; BLOCK]> = None;
        for block in out[body..].chunks_exact_mut(BLOCK) {
            let mut b = Array::from(xor(block, &chain));
            keys.enc.encrypt_block(&mut b);
            block.copy_from_slice(&b);
            if let Some(previous) = behind {
                mac.update(&previous);
            }
            chain.copy_from_slice(&b);
            behind = Some(b.into());
        }
        if let Some(last) = behind {
            mac.update(&last);
        }
        let full = mac.finish();
        out.extend_from_slice(&full[..MAC_LEN]);
        self.advance(full, next_counter);
        Ok(())
    }

    pub(super) fn mac_only_into(&mut self, tag: u8, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
        wire::check_tag(tag)?;
        let seg_len = wire::mac_only_segment_len(plain.len());
        check_len(seg_len)?;
        let next_counter = self.next_counter()?;
        let start = out.len();
        out.reserve(seg_len);
        wire::write_header(out, tag, plain.len() + MAC_LEN);
        out.extend_from_slice(plain);
        let full = self.keys.mac.compute(&self.mcv, &out[start..]);
        out.extend_from_slice(&full[..MAC_LEN]);
        self.advance(full, next_counter);
        Ok(())
    }

    pub(super) fn verify_and_decrypt_into(
        &mut self,
        segment: &[u8],
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<u8> {
        let parsed = wire::parse_segment(segment, max_len)?;
        let (cipher, received_mac) = parsed.data_and_mac();
        if cipher.is_empty() || cipher.len() % BLOCK != 0 {
            return Err(Error::BadPadding);
        }
        let next_counter = self.next_counter()?;
        let keys = &self.keys;
        let mac_start = parsed.mac_start();
        let header = &segment[..mac_start - cipher.len()];
        let mut mac = keys.mac.start(&self.mcv);
        mac.update(header);
        // CMAC over the ciphertext and CBC decryption of it in one pass: the
        // two do not depend on each other, so they run side by side. The
        // plaintext is kept only if the C-MAC verifies.
        let start = out.len();
        out.extend_from_slice(cipher);
        let mut chain = Zeroizing::new(keys.icv(self.counter));
        for block in out[start..].chunks_exact_mut(BLOCK) {
            let ciphertext: [u8; BLOCK] = block_of(block);
            mac.update(&ciphertext);
            let mut b = Array::from(ciphertext);
            keys.enc.decrypt_block(&mut b);
            block.copy_from_slice(&xor(&b, &chain));
            *chain = ciphertext;
        }
        let full = mac.finish();
        let plain_len =
            aws_lc_rs::constant_time::verify_slices_are_equal(&full[..MAC_LEN], received_mac)
                .map_err(|_| Error::MacMismatch)
                .and_then(|()| unpad_len(&out[start..]).ok_or(Error::BadPadding));
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
        let mac_start = parsed.mac_start();
        let full = self.keys.mac.compute(&self.mcv, &segment[..mac_start]);
        aws_lc_rs::constant_time::verify_slices_are_equal(&full[..MAC_LEN], &segment[mac_start..])
            .map_err(|_| Error::MacMismatch)?;
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

    fn advance(&mut self, full_mac: [u8; BLOCK], next_counter: u128) {
        self.mcv = full_mac;
        self.counter = next_counter;
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.mcv.zeroize();
    }
}

/// Expanded keys (the `aes` crate wipes its round keys when dropped).
struct AesKeys {
    /// AES under S-ENC: the ICV, CBC encryption and decryption.
    enc: Aes128,
    mac: CmacKey,
}

impl AesKeys {
    fn new(s_enc: &[u8; BLOCK], s_mac: &[u8; BLOCK]) -> Self {
        Self {
            enc: Aes128::new(&Array::from(*s_enc)),
            mac: CmacKey::new(s_mac),
        }
    }

    /// ICV = AES(S-ENC, counter as 16 big-endian bytes).
    fn icv(&self, counter: u128) -> [u8; BLOCK] {
        let mut block = Array::from(counter.to_be_bytes());
        self.enc.encrypt_block(&mut block);
        block.into()
    }
}

/// An AES-128 CMAC key (NIST SP 800-38B): the cipher and the two subkeys.
struct CmacKey {
    aes: Aes128,
    /// K1, for a message whose last block is complete.
    k1: Zeroizing<[u8; BLOCK]>,
    /// K2, for a message whose last block is padded.
    k2: Zeroizing<[u8; BLOCK]>,
}

impl CmacKey {
    fn new(key: &[u8; BLOCK]) -> Self {
        let aes = Aes128::new(&Array::from(*key));
        let mut l = Array::from([0u8; BLOCK]);
        aes.encrypt_block(&mut l);
        let l = Zeroizing::new(<[u8; BLOCK]>::from(l));
        let k1 = Zeroizing::new(double(&l));
        let k2 = Zeroizing::new(double(&k1));
        Self { aes, k1, k2 }
    }

    /// A CMAC over `mcv` followed by what is passed to [`Cmac::update`].
    fn start(&self, mcv: &[u8; BLOCK]) -> Cmac<'_> {
        // The MCV is one whole block and never the last one, so it can be
        // taken in as the first block right away.
        let mut x = Array::from(*mcv);
        self.aes.encrypt_block(&mut x);
        Cmac {
            key: self,
            x: x.into(),
            pending: [0; BLOCK],
            used: 0,
        }
    }

    /// AES-CMAC(key, MCV || data).
    fn compute(&self, mcv: &[u8; BLOCK], data: &[u8]) -> [u8; BLOCK] {
        let mut mac = self.start(mcv);
        mac.update(data);
        mac.finish()
    }
}

/// A CMAC being computed. The last block (whole or not) is held back until
/// [`Cmac::finish`], which treats it with K1 or K2.
struct Cmac<'k> {
    key: &'k CmacKey,
    /// The chaining value: AES of every block taken in so far.
    x: [u8; BLOCK],
    /// Bytes not taken in yet (at most one block).
    pending: [u8; BLOCK],
    used: usize,
}

impl Cmac<'_> {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.used == BLOCK {
                let mut b = Array::from(xor(&self.x, &self.pending));
                self.key.aes.encrypt_block(&mut b);
                self.x = b.into();
                self.used = 0;
            }
            let take = (BLOCK - self.used).min(data.len());
            self.pending[self.used..self.used + take].copy_from_slice(&data[..take]);
            self.used += take;
            data = &data[take..];
        }
    }

    fn finish(mut self) -> [u8; BLOCK] {
        let last = if self.used == BLOCK {
            xor(&self.pending, &self.key.k1)
        } else {
            self.pending[self.used] = 0x80;
            self.pending[self.used + 1..].fill(0);
            xor(&self.pending, &self.key.k2)
        };
        let mut b = Array::from(xor(&self.x, &last));
        self.key.aes.encrypt_block(&mut b);
        b.into()
    }
}

impl Drop for Cmac<'_> {
    fn drop(&mut self) {
        self.x.zeroize();
        self.pending.zeroize();
    }
}

/// Multiplication by x in GF(2^128) (the CMAC subkey step), in constant time.
fn double(block: &[u8; BLOCK]) -> [u8; BLOCK] {
    let v = u128::from_be_bytes(*block);
    let carry = v >> 127;
    ((v << 1) ^ (0x87 & carry.wrapping_neg())).to_be_bytes()
}

/// `a XOR b` for two blocks (`a` may be a slice of exactly one block).
fn xor(a: &[u8], b: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut out = block_of(a);
    for (o, k) in out.iter_mut().zip(b) {
        *o ^= k;
    }
    out
}

/// The first block of `bytes` (callers pass exactly one block).
fn block_of(bytes: &[u8]) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
    out
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
    use super::{CmacKey, unpad_len};

    fn hex16(s: &str) -> [u8; 16] {
        let v: Vec<u8> = (0..32)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    /// RFC 4493 section 4: the subkeys and the 40- and 64-byte examples (the
    /// first block of the message standing in for the MCV).
    #[test]
    fn cmac_matches_rfc_4493() {
        let key = CmacKey::new(&hex16("2b7e151628aed2a6abf7158809cf4f3c"));
        assert_eq!(*key.k1, hex16("fbeed618357133667c85e08f7236a8de"));
        assert_eq!(*key.k2, hex16("f7ddac306ae266ccf90bc11ee46d513b"));
        let message: Vec<u8> = [
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710",
        ]
        .iter()
        .flat_map(|b| hex16(b))
        .collect();
        let mcv: [u8; 16] = message[..16].try_into().unwrap();
        assert_eq!(
            key.compute(&mcv, &message[16..40]),
            hex16("dfa66747de9ae63030ca32611497c827")
        );
        assert_eq!(
            key.compute(&mcv, &message[16..]),
            hex16("51f0bebf7e3b9d92fc49741779363cfe")
        );
        // Fed in pieces of any size, the same.
        let mut mac = key.start(&mcv);
        for piece in message[16..].chunks(7) {
            mac.update(piece);
        }
        assert_eq!(mac.finish(), hex16("51f0bebf7e3b9d92fc49741779363cfe"));
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
