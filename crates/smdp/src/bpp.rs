//! Building the Bound Profile Package (SGP.22 section 2.5.5 and 5.5, ES8+).
//!
//! ```text
//! BF36 {
//!   BF23 InitialiseSecureChannel {82 remoteOpId, 80 tid, A6 CRT, 5F49 smdpOtpk, 5F37 smdpSign}
//!   A0 {87 ConfigureISDP}                  encrypted + MAC, session keys
//!   A1 {88 StoreMetadata ...}              MAC only, session keys
//!   A2 {87 ReplaceSessionKeys}             encrypted + MAC, session keys
//!   A3 {86 profile segments ...}           encrypted + MAC, profile protection keys
//! }
//! ```
//!
//! Every package gets a fresh one-time key pair (ECKA with the eUICC's
//! one-time key), fresh session keys and fresh random profile protection
//! keys, so no two packages share key material. The one-time private key and
//! the profile protection keys are drawn from the `rng` passed in, so a
//! seeded generator makes the whole package repeat except smdpSign (an
//! ECDSA signature, whose nonce the signing backend draws itself).

use ferrosim_asn1::tlv::{tlv, write_length, write_tag};
use ferrosim_crypto::bsp::BspEncryptor;
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_crypto::kdf::{KEY_LENGTH_AES128, KEY_TYPE_AES, SessionKeys, derive_session_keys};
use ferrosim_crypto::key::KeySource;
use thiserror::Error;
use zeroize::Zeroizing;

/// Why a package could not be built.
#[derive(Debug, Error)]
pub enum BppError {
    /// The eUICC's one-time public key is not a valid P-256 point.
    #[error("invalid eUICC one-time public key: {0}")]
    BadEuiccOtpk(ferrosim_crypto::Error),
    /// A cryptographic step failed (signing, segment protection).
    #[error("crypto: {0}")]
    Crypto(#[from] ferrosim_crypto::Error),
}

/// What a package is bound to and made of.
#[derive(Debug)]
pub struct BppInput<'a> {
    /// The session's transaction id.
    pub transaction_id: &'a [u8],
    /// HostId for the control reference template.
    pub host_id: &'a [u8],
    /// The eUICC's EID as 16 BCD bytes (KDF shared info).
    pub eid: &'a [u8; 16],
    /// otPK.EUICC.ECKA (SEC1 uncompressed).
    pub euicc_otpk: &'a [u8],
    /// StoreMetadataRequest (BF25) DER, the same bytes sent in authenticateClient.
    pub metadata: &'a [u8],
    /// The personalised unprotected profile package (SAIP DER).
    pub profile: &'a [u8],
    /// The DPpb key that signs the secure channel set-up.
    pub dppb: &'a dyn KeySource,
}

/// Builds a Bound Profile Package with fresh keys from `rng`.
pub fn build_bpp(
    input: &BppInput<'_>,
    rng: &mut impl rand::CryptoRng,
) -> Result<Vec<u8>, BppError> {
    let ot = one_time_key(rng)?;
    let shared = ot.agree(input.euicc_otpk).map_err(BppError::BadEuiccOtpk)?;
    let session_keys = derive_session_keys(&shared, input.host_id, input.eid)?;

    // InitialiseSecureChannelRequest (BF23).
    let remote_op = tlv(0x82, &[0x01]);
    let tid = tlv(0x80, input.transaction_id);
    let crt = tlv(
        0xA6,
        &[
            tlv(0x80, &[KEY_TYPE_AES]),
            tlv(0x81, &[KEY_LENGTH_AES128]),
            tlv(0x84, input.host_id),
        ]
        .concat(),
    );
    let smdp_otpk = tlv(0x5F49, ot.public_sec1());
    let euicc_otpk = tlv(0x5F49, input.euicc_otpk);
    let to_sign = [&remote_op[..], &tid, &crt, &smdp_otpk, &euicc_otpk].concat();
    let smdp_sign = wrap_5f37(&input.dppb.sign_raw(&to_sign)?)?;
    let init = tlv(
        0xBF23,
        &[&remote_op[..], &tid, &crt, &smdp_otpk, &smdp_sign].concat(),
    );

    let mut session = BspEncryptor::new(&session_keys);
    // ConfigureISDPRequest (BF24) with no proprietary data.
    let configure = tlv(0xA0, &session.encrypt_and_mac(0x87, &[0xBF, 0x24, 0x00])?);
    let metadata = tlv(
        0xA1,
        &session.mac_only_segments(0x88, input.metadata)?.concat(),
    );

    // ReplaceSessionKeysRequest (BF26): random profile protection keys.
    let mut ppk = Zeroizing::new([0u8; 48]);
    rng.fill_bytes(ppk.as_mut_slice());
    let profile_keys = SessionKeys {
        initial_mcv: ppk[0..16].try_into().unwrap_or_default(),
        s_enc: ppk[16..32].try_into().unwrap_or_default(),
        s_mac: ppk[32..48].try_into().unwrap_or_default(),
    };
    let replace = Zeroizing::new(tlv(
        0xBF26,
        &[
            tlv(0x80, &profile_keys.initial_mcv),
            tlv(0x81, &profile_keys.s_enc),
            tlv(0x82, &profile_keys.s_mac),
        ]
        .concat(),
    ));
    let replace_keys = tlv(0xA2, &session.encrypt_and_mac(0x87, &replace)?);

    // The package is written once into a buffer of its final size: the
    // headers first (their lengths are known before the segments are
    // protected), then the profile segments, most of the package, straight
    // after them.
    let segments_len = BspEncryptor::encrypted_segments_len(input.profile.len());
    let mut a3_header = Vec::with_capacity(8);
    write_tag(&mut a3_header, 0xA3);
    write_length(&mut a3_header, segments_len);
    let parts: [&[u8]; 5] = [&init, &configure, &metadata, &replace_keys, &a3_header];
    let body_len = parts.iter().map(|p| p.len()).sum::<usize>() + segments_len;
    let mut bpp = Vec::with_capacity(body_len + 8);
    write_tag(&mut bpp, 0xBF36);
    write_length(&mut bpp, body_len);
    for part in parts {
        bpp.extend_from_slice(part);
    }
    let mut profile = BspEncryptor::new(&profile_keys);
    profile.encrypt_and_mac_segments_into(0x86, input.profile, &mut bpp)?;
    Ok(bpp)
}

/// otSK/otPK.DP.ECKA from 32 random bytes of `rng` (drawn again in the
/// negligible case that they are not a valid P-256 scalar).
fn one_time_key(rng: &mut impl rand::CryptoRng) -> Result<OneTimeKeyPair, BppError> {
    let mut scalar = Zeroizing::new([0u8; 32]);
    let mut last = None;
    for _ in 0..4 {
        rng.fill_bytes(scalar.as_mut_slice());
        match OneTimeKeyPair::from_scalar(scalar.as_slice()) {
            Ok(key) => return Ok(key),
            Err(e) => last = Some(e),
        }
    }
    Err(BppError::Crypto(
        last.unwrap_or(ferrosim_crypto::Error::Backend("one-time key")),
    ))
}
