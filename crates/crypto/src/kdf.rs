//! Session key derivation: the ANSI X9.63 KDF with SHA-256 (SGP.22 §2.6.5.x / GPC SCP11).
//!
//! From the ECKA shared secret `Z`, the SM-DP+ and the eUICC derive 48 bytes
//! `KDF(Z, sharedInfo)` with `sharedInfo = keyType || keyLength || len(hostId)
//! || hostId || len(EID) || EID`, split into the initial MAC chaining value,
//! S-ENC and S-MAC for the BSP.

use aws_lc_rs::digest;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::key::SharedSecret;

/// Key type value for AES in the control reference template (`80 01 88`).
pub const KEY_TYPE_AES: u8 = 0x88;
/// Key length for AES-128 in the control reference template (`81 01 10`).
pub const KEY_LENGTH_AES128: u8 = 16;
/// Length of an EID in bytes (32 decimal digits, BCD).
pub const EID_LEN: usize = 16;

/// The BSP session keys and the initial MAC chaining value, wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Initial MAC chaining value (first 16 bytes of the KDF output).
    pub initial_mcv: [u8; 16],
    /// Encryption key S-ENC (next 16 bytes).
    pub s_enc: [u8; 16],
    /// MAC key S-MAC (last 16 bytes).
    pub s_mac: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

/// Derives the session keys with the RSP parameters (AES, 16-byte keys).
pub fn derive_session_keys(
    shared_secret: &SharedSecret,
    host_id: &[u8],
    eid: &[u8; EID_LEN],
) -> Result<SessionKeys> {
    derive_session_keys_with(
        shared_secret.as_bytes(),
        KEY_TYPE_AES,
        KEY_LENGTH_AES128,
        host_id,
        eid,
    )
}

/// Derives the session keys with explicit CRT parameters, as received in an
/// `InitialiseSecureChannel` (`A6 {80 keyType, 81 keyLength, 84 hostId}`).
///
/// Only 16-byte (AES-128) keys are supported; `host_id` and `eid` must each
/// be at most 255 bytes.
pub fn derive_session_keys_with(
    shared_secret: &[u8],
    key_type: u8,
    key_length: u8,
    host_id: &[u8],
    eid: &[u8],
) -> Result<SessionKeys> {
    if key_length != KEY_LENGTH_AES128 {
        return Err(Error::Unsupported("session key length other than 16 bytes"));
    }
    let host_len = u8::try_from(host_id.len())
        .map_err(|_| Error::InvalidParameter("hostId longer than 255 bytes"))?;
    let eid_len = u8::try_from(eid.len())
        .map_err(|_| Error::InvalidParameter("EID longer than 255 bytes"))?;
    let mut info = Vec::with_capacity(4 + host_id.len() + eid.len());
    info.extend_from_slice(&[key_type, key_length, host_len]);
    info.extend_from_slice(host_id);
    info.push(eid_len);
    info.extend_from_slice(eid);

    let mut okm = Zeroizing::new([0u8; 48]);
    x963_kdf_sha256(shared_secret, &info, okm.as_mut())?;
    let mut keys = SessionKeys {
        initial_mcv: [0; 16],
        s_enc: [0; 16],
        s_mac: [0; 16],
    };
    keys.initial_mcv.copy_from_slice(&okm[..16]);
    keys.s_enc.copy_from_slice(&okm[16..32]);
    keys.s_mac.copy_from_slice(&okm[32..]);
    Ok(keys)
}

/// ANSI X9.63 KDF with SHA-256: `out = H(Z || 00000001 || info) || H(Z || 00000002 || info) || ...`,
/// truncated to `out.len()`.
pub fn x963_kdf_sha256(z: &[u8], shared_info: &[u8], out: &mut [u8]) -> Result<()> {
    let hash_len = digest::SHA256_OUTPUT_LEN;
    for (i, chunk) in out.chunks_mut(hash_len).enumerate() {
        let counter = u32::try_from(i + 1)
            .map_err(|_| Error::InvalidParameter("X9.63 KDF output too long"))?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(z);
        ctx.update(&counter.to_be_bytes());
        ctx.update(shared_info);
        let block = ctx.finish();
        chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_parameters() {
        assert!(matches!(
            derive_session_keys_with(&[1; 32], 0x88, 24, b"h", &[0; 16]),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            derive_session_keys_with(&[1; 32], 0x88, 16, &[0; 256], &[0; 16]),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn output_is_a_prefix_of_longer_output() {
        let mut short = [0u8; 20];
        let mut long = [0u8; 70];
        x963_kdf_sha256(b"z", b"info", &mut short).unwrap();
        x963_kdf_sha256(b"z", b"info", &mut long).unwrap();
        assert_eq!(short, long[..20]);
        let first = digest::digest(&digest::SHA256, b"z\x00\x00\x00\x01info");
        assert_eq!(&long[..32], first.as_ref());
    }

    #[test]
    fn debug_hides_keys() {
        let keys =
            derive_session_keys(&SharedSecret::from_bytes([3; 32]), b"host", &[0x89; 16]).unwrap();
        assert_eq!(format!("{keys:?}"), "SessionKeys(..)");
    }
}
