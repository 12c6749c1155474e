//! Hot paths of the download: signatures, ECDH with one-time key generation,
//! the KDF, and BSP over a 12 KB profile. Each EC operation is measured with
//! the production backend (aws-lc-rs) and with RustCrypto `p256` for
//! comparison; the AES segment work likewise with aws-lc-rs (production: CBC,
//! and the CMAC built from CBC in `bsp`) and RustCrypto `aes`/`cbc`/`cmac`.
//!
//! Run: `cargo bench -p ferrosim-crypto --bench crypto -- --quick`.

#![allow(clippy::unwrap_used)] // benchmark setup on fixed inputs

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosim_crypto::bsp::{
    BspDecryptor, BspEncryptor, MAX_ENCRYPTED_PLAIN_LEN, TAG_PROFILE_SEGMENT,
};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_crypto::kdf::{SessionKeys, derive_session_keys};
use ferrosim_crypto::{KeySource, SharedSecret, SoftwareKey};
use p256::elliptic_curve::Generate;

/// Signed parts in RSP are a few hundred bytes (euiccSigned1 with device info).
const SIGNED_LEN: usize = 300;
/// Size of a typical consumer profile package.
const PROFILE_LEN: usize = 12 * 1024;

fn signed_data() -> Vec<u8> {
    (0..SIGNED_LEN).map(|i| i as u8).collect()
}

fn sign(c: &mut Criterion) {
    let msg = signed_data();
    let mut g = c.benchmark_group("ecdsa_sign_p256");
    let aws = SoftwareKey::generate().unwrap();
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| aws.sign_raw(black_box(&msg)).unwrap())
    });
    let rc: p256::ecdsa::SigningKey = Generate::generate_from_rng(&mut rand::rng());
    g.bench_function("rustcrypto-p256", |b| {
        b.iter(|| {
            let sig: p256::ecdsa::Signature =
                p256::ecdsa::signature::Signer::sign(&rc, black_box(&msg));
            sig
        })
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let msg = signed_data();
    let key = SoftwareKey::generate().unwrap();
    let sig = key.sign_raw(&msg).unwrap();
    let public = key.public_key_sec1().to_vec();
    let mut g = c.benchmark_group("ecdsa_verify_p256");
    let parsed = VerifyingKey::from_sec1(&public).unwrap();
    g.bench_function("aws-lc-rs/parsed-key", |b| {
        b.iter(|| parsed.verify_raw(black_box(&msg), &sig).unwrap())
    });
    g.bench_function("aws-lc-rs/parse-each-call", |b| {
        b.iter(|| ferrosim_crypto::ecdsa::verify_raw(&public, black_box(&msg), &sig).unwrap())
    });
    let rc_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
    let rc_sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
    g.bench_function("rustcrypto-p256/parsed-key", |b| {
        b.iter(|| {
            p256::ecdsa::signature::Verifier::verify(&rc_key, black_box(&msg), &rc_sig).unwrap()
        })
    });
    g.finish();
}

fn ecdh(c: &mut Criterion) {
    // The SM-DP+ makes a one-time key pair and agrees with the eUICC's otPK.
    let peer = SoftwareKey::generate().unwrap();
    let peer_public = peer.public_key_sec1().to_vec();
    let mut g = c.benchmark_group("ecdh_p256_with_one_time_keygen");
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            let otk = OneTimeKeyPair::generate().unwrap();
            otk.agree(black_box(&peer_public)).unwrap()
        })
    });
    g.bench_function("rustcrypto-p256", |b| {
        b.iter(|| {
            let secret: p256::ecdh::EphemeralSecret = Generate::generate_from_rng(&mut rand::rng());
            let _public = secret.public_key().to_sec1_bytes();
            let peer = p256::PublicKey::from_sec1_bytes(black_box(&peer_public)).unwrap();
            let shared = secret.diffie_hellman(&peer);
            let mut out = [0u8; 32];
            out.copy_from_slice(shared.raw_secret_bytes());
            out
        })
    });
    g.finish();
}

fn kdf(c: &mut Criterion) {
    let secret = SharedSecret::from_bytes([0x5A; 32]);
    let eid = [0x89; 16];
    c.bench_function("x963_kdf_session_keys", |b| {
        b.iter(|| derive_session_keys(black_box(&secret), b"host-id!", &eid).unwrap())
    });
}

fn keys() -> SessionKeys {
    SessionKeys {
        initial_mcv: [1; 16],
        s_enc: [2; 16],
        s_mac: [3; 16],
    }
}

fn bsp(c: &mut Criterion) {
    let profile: Vec<u8> = (0..PROFILE_LEN).map(|i| (i * 7) as u8).collect();
    let mut protected = Vec::new();
    BspEncryptor::new(&keys())
        .encrypt_and_mac_segments_into(TAG_PROFILE_SEGMENT, &profile, &mut protected)
        .unwrap();
    let segments = BspEncryptor::new(&keys())
        .encrypt_and_mac_segments(TAG_PROFILE_SEGMENT, &profile)
        .unwrap();

    let mut g = c.benchmark_group("bsp_12k_profile");
    g.throughput(Throughput::Bytes(PROFILE_LEN as u64));
    g.bench_function("encrypt_and_mac", |b| {
        let mut out = Vec::with_capacity(protected.len());
        b.iter(|| {
            out.clear();
            let mut enc = BspEncryptor::new(&keys());
            enc.encrypt_and_mac_segments_into(TAG_PROFILE_SEGMENT, black_box(&profile), &mut out)
                .unwrap()
        })
    });
    g.bench_function("verify_and_decrypt", |b| {
        let mut out = Vec::with_capacity(PROFILE_LEN);
        b.iter(|| {
            out.clear();
            let mut dec = BspDecryptor::new(&keys());
            for seg in &segments {
                dec.verify_and_decrypt_into(black_box(seg), &mut out)
                    .unwrap();
            }
        })
    });
    g.finish();
}

/// One full encrypted segment's AES work (ICV, CBC over 1008 bytes, CMAC over
/// MCV || header || ciphertext) in both AES backends.
fn aes_backends(c: &mut Criterion) {
    use aes::cipher::{
        BlockCipherEncrypt, BlockModeEncrypt, InnerIvInit, KeyInit, block_padding::Iso7816,
    };
    use cmac::Mac;

    let plain = vec![0x42u8; MAX_ENCRYPTED_PLAIN_LEN];
    let k = keys();
    let mut g = c.benchmark_group("bsp_segment_aes_backend");
    g.throughput(Throughput::Bytes(MAX_ENCRYPTED_PLAIN_LEN as u64));

    let enc = aes::Aes128::new(&k.s_enc.into());
    let mac = <cmac::Cmac<aes::Aes128> as KeyInit>::new(&k.s_mac.into());
    g.bench_function(BenchmarkId::new("rustcrypto-aes-cbc-cmac", "1007B"), |b| {
        let mut buf = vec![0u8; 1008];
        b.iter(|| {
            let mut icv = 1u128.to_be_bytes().into();
            enc.encrypt_block(&mut icv);
            buf[..plain.len()].copy_from_slice(&plain);
            cbc::Encryptor::<aes::Aes128>::inner_iv_init(enc.clone(), &icv)
                .encrypt_padded::<Iso7816>(&mut buf, plain.len())
                .unwrap();
            let mut m = mac.clone();
            m.update(&k.initial_mcv);
            m.update(&[0x86, 0x82, 0x03, 0xF8]);
            m.update(&buf);
            m.finalize().into_bytes()
        })
    });

    use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
    let cbc_key = EncryptingKey::cbc(UnboundCipherKey::new(&AES_128, &k.s_enc).unwrap()).unwrap();
    let ecb_key = EncryptingKey::ecb(UnboundCipherKey::new(&AES_128, &k.s_enc).unwrap()).unwrap();
    let cmac_key = aws_lc_rs::cmac::Key::new(aws_lc_rs::cmac::AES_128, &k.s_mac).unwrap();
    g.bench_function(BenchmarkId::new("aws-lc-rs-aes-cbc-cmac", "1007B"), |b| {
        let mut buf = vec![0u8; 1008];
        b.iter(|| {
            let mut icv = 1u128.to_be_bytes();
            ecb_key
                .less_safe_encrypt(&mut icv, EncryptionContext::None)
                .unwrap();
            buf[..plain.len()].copy_from_slice(&plain);
            buf[plain.len()] = 0x80;
            cbc_key
                .less_safe_encrypt(&mut buf, EncryptionContext::Iv128(icv.into()))
                .unwrap();
            let mut m = aws_lc_rs::cmac::Context::with_key(&cmac_key);
            m.update(&k.initial_mcv).unwrap();
            m.update(&[0x86, 0x82, 0x03, 0xF8]).unwrap();
            m.update(&buf).unwrap();
            m.sign().unwrap()
        })
    });

    // Receiver side: CMAC over the ciphertext, then CBC decryption.
    let mut ciphertext = vec![0u8; 1008];
    ciphertext[..plain.len()].copy_from_slice(&plain);
    ciphertext[plain.len()] = 0x80;
    cbc_key
        .less_safe_encrypt(&mut ciphertext, EncryptionContext::Iv128([7u8; 16].into()))
        .unwrap();
    g.bench_function(
        BenchmarkId::new("rustcrypto-cmac-cbc-decrypt", "1007B"),
        |b| {
            use aes::cipher::BlockModeDecrypt;
            let mut buf = vec![0u8; 1008];
            b.iter(|| {
                let mut m = mac.clone();
                m.update(&k.initial_mcv);
                m.update(&[0x86, 0x82, 0x03, 0xF8]);
                m.update(&ciphertext);
                let tag = m.finalize().into_bytes();
                let mut icv = 1u128.to_be_bytes().into();
                enc.encrypt_block(&mut icv);
                buf.copy_from_slice(&ciphertext);
                let n = cbc::Decryptor::<aes::Aes128>::inner_iv_init(enc.clone(), &icv)
                    .decrypt_padded::<Iso7816>(&mut buf)
                    .map(<[u8]>::len)
                    .unwrap_or(0);
                (tag, n)
            })
        },
    );
    use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext};
    let cbc_dec = DecryptingKey::cbc(UnboundCipherKey::new(&AES_128, &k.s_enc).unwrap()).unwrap();
    g.bench_function(
        BenchmarkId::new("aws-lc-rs-cmac-cbc-decrypt", "1007B"),
        |b| {
            let mut buf = vec![0u8; 1008];
            b.iter(|| {
                let mut m = aws_lc_rs::cmac::Context::with_key(&cmac_key);
                m.update(&k.initial_mcv).unwrap();
                m.update(&[0x86, 0x82, 0x03, 0xF8]).unwrap();
                m.update(&ciphertext).unwrap();
                let tag = m.sign().unwrap();
                let mut icv = 1u128.to_be_bytes();
                ecb_key
                    .less_safe_encrypt(&mut icv, EncryptionContext::None)
                    .unwrap();
                buf.copy_from_slice(&ciphertext);
                let n = cbc_dec
                    .decrypt(&mut buf, DecryptionContext::Iv128(icv.into()))
                    .unwrap()
                    .len();
                (tag, n)
            })
        },
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sign, verify, ecdh, kdf, bsp, aes_backends
}
criterion_main!(benches);
