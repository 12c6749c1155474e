//! The SCP03t chaining state shared by both directions: keys, MAC chaining
//! value and block counter, and the per-segment AES work.

use aes::Aes128;
use aes::cipher::{
    BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit,
    block_padding::Iso7816,
};
use cmac::{Cmac, Mac};
use zeroize::Zeroize;

use super::{MAC_LEN, VerifiedSegment, check_len, wire};
use crate::error::{Error, Result};
use crate::kdf::SessionKeys;

type CbcEnc = cbc::Encryptor<Aes128>;
type CbcDec = cbc::Decryptor<Aes128>;

/// Keys (expanded once), MCV and block counter.
pub(super) struct State {
    enc: Aes128,
    mac: Cmac<Aes128>,
    mcv: [u8; 16],
    counter: u128,
}

impl State {
    pub(super) fn new(keys: &SessionKeys) -> Self {
        Self {
            enc: Aes128::new(&keys.s_enc.into()),
            mac: <Cmac<Aes128> as KeyInit>::new(&keys.s_mac.into()),
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
        let padded_len = wire::padded_len(plain.len());
        let start = out.len();
        out.reserve(seg_len);
        wire::write_header(out, tag, padded_len + MAC_LEN);
        let body = out.len();
        out.extend_from_slice(plain);
        out.resize(body + padded_len, 0);
        let icv = self.icv();
        let encrypted = CbcEnc::inner_iv_init(self.enc.clone(), &icv.into())
            .encrypt_padded::<Iso7816>(&mut out[body..], plain.len())
            .map(<[u8]>::len);
        if !matches!(encrypted, Ok(len) if len == padded_len) {
            out.truncate(start);
            return Err(Error::Backend("CBC encryption"));
        }
        let full = self.cmac(&out[start..]);
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
        let full = self.cmac(&out[start..]);
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
        let (cipher, _) = parsed.data_and_mac();
        if cipher.is_empty() || cipher.len() % 16 != 0 {
            return Err(Error::BadPadding);
        }
        let next_counter = self.next_counter()?;
        let full = self.verify_mac(segment, parsed.mac_start())?;
        let start = out.len();
        out.extend_from_slice(cipher);
        let icv = self.icv();
        let plain_len = CbcDec::inner_iv_init(self.enc.clone(), &icv.into())
            .decrypt_padded::<Iso7816>(&mut out[start..])
            .map(<[u8]>::len);
        match plain_len {
            Ok(len) => {
                out.truncate(start + len);
                self.advance(full, next_counter);
                Ok(parsed.tag)
            }
            Err(_) => {
                out[start..].zeroize();
                out.truncate(start);
                Err(Error::BadPadding)
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
        let full = self.verify_mac(segment, parsed.mac_start())?;
        self.advance(full, next_counter);
        let (data, _) = parsed.data_and_mac();
        Ok(VerifiedSegment {
            tag: parsed.tag,
            data,
        })
    }

    /// ICV = AES-ECB(S-ENC, counter as 16 big-endian bytes).
    fn icv(&self) -> [u8; 16] {
        let mut block = self.counter.to_be_bytes().into();
        self.enc.encrypt_block(&mut block);
        block.into()
    }

    /// AES-CMAC(S-MAC, MCV || header || data).
    fn cmac(&self, header_and_data: &[u8]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(&self.mcv);
        mac.update(header_and_data);
        mac.finalize().into_bytes().into()
    }

    /// Recomputes the CMAC over everything before `mac_start` and compares the
    /// first 8 bytes with the segment's C-MAC in constant time.
    fn verify_mac(&self, segment: &[u8], mac_start: usize) -> Result<[u8; 16]> {
        let full = self.cmac(&segment[..mac_start]);
        aws_lc_rs::constant_time::verify_slices_are_equal(&full[..MAC_LEN], &segment[mac_start..])
            .map_err(|_| Error::MacMismatch)?;
        Ok(full)
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
