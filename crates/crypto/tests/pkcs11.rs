//! PKCS#11 key source against SoftHSM2.
//!
//! SoftHSM2 reads its configuration (where tokens live) from the
//! `SOFTHSM2_CONF` environment variable when the module is initialised. The
//! crate forbids `unsafe`, so the variable cannot be set inside this process:
//! [`softhsm_suite`] prepares a private token directory and runs the
//! `in_token_*` tests in a child process of this test binary with the variable
//! set, one at a time, and checks that all of them ran and passed.
//!
//! Without `/usr/lib/softhsm/libsofthsm2.so` the suite fails with a clear
//! message, unless `FERROSIM_SKIP_PKCS11=1` is set.

#![allow(clippy::unwrap_used)] // test helpers unwrap on local, known-good setup steps

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ferrosim_crypto::ecdsa;
use ferrosim_crypto::ecka::{self, OneTimeKeyPair};
use ferrosim_crypto::pkcs11::Pkcs11Key;
use ferrosim_crypto::{Error, KeySource, SoftwareKey};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ferrosim-test";
const PIN: &str = "user-pin-4711";
const SO_PIN: &str = "so-pin-0815";
/// Set in the child process; the `in_token_*` tests run only there.
const CHILD_ENV: &str = "FERROSIM_PKCS11_CHILD";
/// Label of a key imported with `softhsm2-util --import` before the tests run.
const IMPORTED_LABEL: &str = "imported-dpauth";
/// Number of `in_token_*` tests below; the parent checks that all ran.
const IN_TOKEN_TESTS: usize = 8;

#[test]
fn softhsm_suite() {
    if !Path::new(MODULE).exists() {
        if std::env::var("FERROSIM_SKIP_PKCS11").as_deref() == Ok("1") {
            eprintln!("PKCS#11 tests skipped: {MODULE} missing and FERROSIM_SKIP_PKCS11=1");
            return;
        }
        panic!(
            "SoftHSM2 is not installed ({MODULE} missing): install the softhsm2 package, \
             or set FERROSIM_SKIP_PKCS11=1 to skip the PKCS#11 tests"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    init_token(&conf);
    import_key(&conf, dir.path());

    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["in_token_", "--ignored", "--test-threads=1", "--nocapture"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "PKCS#11 tests failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let expected = format!("test result: ok. {IN_TOKEN_TESTS} passed; 0 failed");
    assert!(
        stdout.contains(&expected),
        "expected `{expected}` from the child run\n{stdout}"
    );
}

fn write_config(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    conf
}

fn softhsm_util(conf: &Path, args: &[&str]) {
    let out = Command::new("softhsm2-util")
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn init_token(conf: &Path) {
    softhsm_util(
        conf,
        &[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ],
    );
}

/// Imports a software key (PKCS#8 PEM written by this crate) the way an
/// operator would provision an existing key into a token.
fn import_key(conf: &Path, dir: &Path) {
    let key = SoftwareKey::generate().unwrap();
    let pem_path = dir.join("imported.pem");
    std::fs::write(&pem_path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("imported.pub"), key.public_key_sec1()).unwrap();
    softhsm_util(
        conf,
        &[
            "--import",
            pem_path.to_str().unwrap(),
            "--token",
            TOKEN,
            "--label",
            IMPORTED_LABEL,
            "--id",
            "0a01",
            "--pin",
            PIN,
        ],
    );
}

/// True in the child process started by [`softhsm_suite`]. Run directly
/// (`--ignored` without the suite), the tests cannot reach the private token
/// directory, so they say so and stop.
fn in_child() -> bool {
    let child = std::env::var_os(CHILD_ENV).is_some();
    if !child {
        eprintln!("not started by softhsm_suite (no {CHILD_ENV}); nothing to do");
    }
    child
}

fn imported_public_key() -> Vec<u8> {
    let conf = PathBuf::from(std::env::var_os("SOFTHSM2_CONF").unwrap());
    std::fs::read(conf.parent().unwrap().join("imported.pub")).unwrap()
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_generate_sign_verify() {
    if !in_child() {
        return;
    }
    let key = Pkcs11Key::generate(MODULE, TOKEN, PIN, "dppb-generated").unwrap();
    assert_eq!(key.public_key_sec1().len(), 65);
    assert_eq!(key.key_label(), "dppb-generated");
    assert_eq!(key.token_label(), TOKEN);
    let protection = key.protection().unwrap();
    assert!(protection.sensitive);
    assert!(!protection.extractable);
    let sig = key.sign_raw(b"smdpSigned2").unwrap();
    ecdsa::verify_raw(key.public_key_sec1(), b"smdpSigned2", &sig).unwrap();
    assert!(matches!(
        ecdsa::verify_raw(key.public_key_sec1(), b"other", &sig),
        Err(Error::BadSignature)
    ));
    // The same label cannot be generated twice.
    assert!(matches!(
        Pkcs11Key::generate(MODULE, TOKEN, PIN, "dppb-generated"),
        Err(Error::Pkcs11Object(_))
    ));
    // Reopening by label finds the same key.
    let again = Pkcs11Key::open(MODULE, TOKEN, PIN, "dppb-generated").unwrap();
    assert_eq!(again.public_key_sec1(), key.public_key_sec1());
    let sig = again.sign_raw(b"x").unwrap();
    key.sign_raw(b"y").unwrap();
    ecdsa::verify_raw(key.public_key_sec1(), b"x", &sig).unwrap();
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_imported_key() {
    if !in_child() {
        return;
    }
    let key = Pkcs11Key::open(MODULE, TOKEN, PIN, IMPORTED_LABEL).unwrap();
    assert_eq!(key.public_key_sec1(), imported_public_key());
    let sig = key.sign_raw(b"serverSigned1").unwrap();
    let der = ecdsa::raw_to_der(&sig).unwrap();
    ecdsa::verify_der(&imported_public_key(), b"serverSigned1", &der).unwrap();
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_ecdh() {
    if !in_child() {
        return;
    }
    let key = Pkcs11Key::generate(MODULE, TOKEN, PIN, "ecka-generated").unwrap();
    assert!(key.supports_ecdh(), "SoftHSM2 offers CKM_ECDH1_DERIVE");
    let peer = OneTimeKeyPair::generate().unwrap();
    let from_token = key.ecdh(peer.public_sec1()).unwrap();
    let from_peer = peer.agree(key.public_key_sec1()).unwrap();
    assert_eq!(from_token, from_peer);
    // Compressed peer points are converted before they reach the token.
    let p = peer.public_sec1();
    let mut compressed = vec![0x02 | (p[64] & 1)];
    compressed.extend_from_slice(&p[1..33]);
    assert_eq!(key.ecdh(&compressed).unwrap(), from_peer);
    assert_eq!(ecka::agree_with_key_source(&key, p).unwrap(), from_peer);

    // softhsm2-util imports keys with CKA_DERIVE false: ECDH is refused, typed.
    let imported = Pkcs11Key::open(MODULE, TOKEN, PIN, IMPORTED_LABEL).unwrap();
    assert!(!imported.supports_ecdh());
    assert!(matches!(imported.ecdh(p), Err(Error::Unsupported(_))));
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_rejects_invalid_peer_points() {
    if !in_child() {
        return;
    }
    let key = Pkcs11Key::generate(MODULE, TOKEN, PIN, "points-generated").unwrap();
    let mut off_curve = key.public_key_sec1().to_vec();
    off_curve[64] ^= 1;
    for bad in [&off_curve[..], &[0x04; 65][..], &[][..], &off_curve[..33]] {
        assert!(matches!(key.ecdh(bad), Err(Error::InvalidPoint(_))));
    }
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_open_errors() {
    if !in_child() {
        return;
    }
    assert!(matches!(
        Pkcs11Key::open(MODULE, "no-such-token", PIN, IMPORTED_LABEL),
        Err(Error::Pkcs11Object(_))
    ));
    assert!(matches!(
        Pkcs11Key::open(MODULE, TOKEN, PIN, "no-such-key"),
        Err(Error::Pkcs11Object(_))
    ));
    let wrong_pin = Pkcs11Key::open(MODULE, TOKEN, "0000", IMPORTED_LABEL).unwrap_err();
    assert!(
        matches!(
            wrong_pin,
            Error::Pkcs11 {
                operation: "logging in",
                ..
            }
        ),
        "{wrong_pin}"
    );
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_concurrent_signing() {
    if !in_child() {
        return;
    }
    let key: Arc<dyn KeySource> =
        Arc::new(Pkcs11Key::open(MODULE, TOKEN, PIN, IMPORTED_LABEL).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let key = Arc::clone(&key);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let msg = format!("thread {t} message {i}");
                    let sig = key.sign_raw(msg.as_bytes()).unwrap();
                    ecdsa::verify_raw(key.public_key_sec1(), msg.as_bytes(), &sig).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_debug_shows_no_secrets() {
    if !in_child() {
        return;
    }
    let key = Pkcs11Key::open(MODULE, TOKEN, PIN, IMPORTED_LABEL).unwrap();
    let dbg = format!("{key:?}");
    assert!(dbg.contains(IMPORTED_LABEL));
    assert!(!dbg.contains(PIN));
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_token_aes_gcm_key() {
    use ferrosim_crypto::pkcs11_aes::{GCM_TAG_LEN, NOT_AUTHENTIC, Pkcs11AesKey};
    if !in_child() {
        return;
    }
    let key = Pkcs11AesKey::generate(MODULE, TOKEN, PIN, "kek-generated").unwrap();
    assert_eq!(key.key_label(), "kek-generated");
    let nonce = [9u8; 12];
    let sealed = key.seal(&nonce, b"data key 1", &[0x42; 32]).unwrap();
    assert_eq!(sealed.len(), 32 + GCM_TAG_LEN);
    assert_ne!(&sealed[..32], &[0x42; 32]);
    let again = Pkcs11AesKey::open(MODULE, TOKEN, PIN, "kek-generated").unwrap();
    assert_eq!(
        again.open_sealed(&nonce, b"data key 1", &sealed).unwrap(),
        vec![0x42; 32]
    );
    let mut changed = sealed.clone();
    changed[0] ^= 1;
    for (nonce, aad, value) in [
        (nonce, &b"data key 2"[..], &sealed),
        (nonce, &b"data key 1"[..], &changed),
        ([8u8; 12], &b"data key 1"[..], &sealed),
    ] {
        let r = again.open_sealed(&nonce, aad, value);
        let shown = format!("{r:?}");
        assert!(
            matches!(r, Err(Error::Pkcs11Object(m)) if m == NOT_AUTHENTIC),
            "{shown}"
        );
    }
    assert!(matches!(
        Pkcs11AesKey::generate(MODULE, TOKEN, PIN, "kek-generated"),
        Err(Error::Pkcs11Object(_))
    ));
    assert!(matches!(
        Pkcs11AesKey::open(MODULE, TOKEN, PIN, "no-such-kek"),
        Err(Error::Pkcs11Object(_))
    ));
    assert!(!format!("{key:?}").contains("42"));
}
