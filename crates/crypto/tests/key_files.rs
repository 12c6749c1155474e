//! Loading private keys written by other tools: `openssl ecparam -genkey`
//! (SEC1 `EC PRIVATE KEY` after an `EC PARAMETERS` block), `openssl genpkey`
//! (PKCS#8), rcgen 0.14 (`KeyPair::serialize_pem`, PKCS#8). The files under
//! `tests/data/` are throwaway test keys.

use ferrosim_crypto::{Error, KeySource, SoftwareKey, ecdsa};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("read test key")
}

fn expected_public(name: &str) -> Vec<u8> {
    hex::decode(data(name).trim()).expect("hex public key")
}

fn assert_signs(key: &SoftwareKey) {
    let sig = key.sign_raw(b"euiccSigned2").expect("sign");
    ecdsa::verify_raw(key.public_key_sec1(), b"euiccSigned2", &sig).expect("verify");
}

#[test]
fn openssl_ecparam_genkey_sec1_with_parameters_block() {
    let key = SoftwareKey::from_pem(&data("openssl-ecparam-genkey.pem")).expect("load");
    assert_eq!(
        key.public_key_sec1(),
        expected_public("openssl-ecparam-genkey.pub.hex")
    );
    assert_signs(&key);
}

#[test]
fn openssl_genpkey_pkcs8() {
    let key = SoftwareKey::from_pem(&data("openssl-genpkey.pem")).expect("load");
    assert_eq!(
        key.public_key_sec1(),
        expected_public("openssl-genpkey.pub.hex")
    );
    assert_signs(&key);
    // Exporting and re-loading keeps the key.
    let again = SoftwareKey::from_pem(&key.to_pkcs8_pem().expect("export")).expect("reload");
    assert_eq!(again.public_key_sec1(), key.public_key_sec1());
}

#[test]
fn from_file_reads_pem_and_der() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SoftwareKey::from_pem(&data("openssl-genpkey.pem")).expect("load");
    let pem_path = dir.path().join("key.pem");
    let der_path = dir.path().join("key.der");
    std::fs::write(&pem_path, data("openssl-genpkey.pem")).expect("write");
    std::fs::write(&der_path, key.to_sec1_der().expect("export").as_slice()).expect("write");
    for path in [&pem_path, &der_path] {
        let loaded = SoftwareKey::from_file(path).expect("from_file");
        assert_eq!(loaded.public_key_sec1(), key.public_key_sec1());
    }
    assert!(matches!(
        SoftwareKey::from_file(dir.path().join("missing.pem")),
        Err(Error::Io(_))
    ));
}

#[test]
fn rcgen_serialized_key() {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("rcgen key");
    let key = SoftwareKey::from_pem(&kp.serialize_pem()).expect("load rcgen PEM");
    assert_eq!(key.public_key_sec1(), kp.public_key_raw());
    assert_signs(&key);
    let der = SoftwareKey::from_der(&kp.serialize_der()).expect("load rcgen DER");
    assert_eq!(der.public_key_sec1(), key.public_key_sec1());
}

#[test]
fn other_curves_are_refused() {
    assert!(matches!(
        SoftwareKey::from_pem(&data("openssl-p384.pem")),
        Err(Error::InvalidPrivateKey(_))
    ));
}
