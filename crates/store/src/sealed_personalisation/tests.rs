use super::*;
use ferrosim_saip::{AdmKey, Key128, Pin, Puk};
use ferrosim_secrets::Kek;

const K_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const OPC_HEX: &str = "f0e0d0c0b0a090807060504030201000";

fn iccid(body: &str) -> Iccid {
    Iccid::from_body(body).expect("test ICCID")
}

fn sample(body: &str) -> Personalisation {
    let mut p = Personalisation::new(iccid(body));
    p.k = Some(Key128::from_hex("K", K_HEX).expect("K"));
    p.opc = Some(Key128::from_hex("OPc", OPC_HEX).expect("OPc"));
    // Eight digits: the sealed text is random hex, in which a 4-digit PIN
    // turns up by chance about once in 200 runs (a flaky CI failure).
    p.pin1 = Some(Pin::new("PIN1", "47110815").expect("PIN1"));
    p.puk1 = Some(Puk::new("PUK1", "98765432").expect("PUK1"));
    p.adm1 = Some(AdmKey::new("ADM1", "a1b2c3d4e5f60718").expect("ADM1"));
    p
}

fn keyring() -> (Kek, Keyring) {
    let mut rng = rand::rng();
    let kek = Kek::generate(&mut rng);
    let mut ring = Keyring::unwrap_all(&kek, []).expect("empty keyring");
    ring.add_data_key(&kek, &mut rng).expect("data key");
    (kek, ring)
}

#[test]
fn sealed_text_round_trips_and_shows_no_secret() {
    let (_, ring) = keyring();
    let p = sample("894400000000000001");
    let text = seal_personalisation(&ring, &p, &mut rand::rng()).expect("seal");
    for secret in [K_HEX, OPC_HEX, "47110815", "98765432", "a1b2c3d4e5f60718"] {
        assert!(!text.contains(secret), "{secret} in clear");
    }
    assert_eq!(stored_form(&text), Ok(StoredForm::Sealed { data_key: 1 }));
    let back = open_personalisation(Some(&ring), &p.iccid, &text).expect("open");
    assert_eq!(encode_personalisation(&back), encode_personalisation(&p));
}

#[test]
fn clear_rows_are_still_read() {
    let p = sample("894400000000000001");
    let clear = encode_personalisation(&p);
    assert_eq!(stored_form(&clear), Ok(StoredForm::Clear));
    let back = open_personalisation(None, &p.iccid, &clear).expect("clear row");
    assert_eq!(encode_personalisation(&back), clear);
}

#[test]
fn garbage_gives_typed_errors() {
    let (_, ring) = keyring();
    let (_, other_ring) = keyring();
    let p = sample("894400000000000001");
    let text = seal_personalisation(&ring, &p, &mut rand::rng()).expect("seal");
    let corrupt = |r: Result<Personalisation, StoreError>| {
        assert!(matches!(r, Err(StoreError::Corrupt(_))), "{:?}", r.err());
    };
    // No keyring, another keyring (wrong key), moved to another row.
    corrupt(open_personalisation(None, &p.iccid, &text));
    corrupt(open_personalisation(Some(&other_ring), &p.iccid, &text));
    corrupt(open_personalisation(
        Some(&ring),
        &iccid("894400000000000002"),
        &text,
    ));
    // Every byte flipped in turn, truncations, missing key id, not hex.
    let bytes = hex::decode(&text[SEALED_PREFIX.len()..]).expect("hex");
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        let tampered = format!("{SEALED_PREFIX}{}", hex::encode(&t));
        corrupt(open_personalisation(Some(&ring), &p.iccid, &tampered));
    }
    for n in 0..bytes.len() {
        let cut = format!("{SEALED_PREFIX}{}", hex::encode(&bytes[..n]));
        corrupt(open_personalisation(Some(&ring), &p.iccid, &cut));
    }
    for junk in [
        "",
        "sealed1:",
        "sealed1:zz",
        "sealed2:00",
        "[]",
        "{",
        "{}",
        "\u{0}",
    ] {
        corrupt(open_personalisation(Some(&ring), &p.iccid, junk));
    }
    // A clear row naming another ICCID than its own.
    let clear = encode_personalisation(&p);
    corrupt(open_personalisation(
        None,
        &iccid("894400000000000002"),
        &clear,
    ));
}

#[test]
fn old_data_keys_still_open_after_a_new_one() {
    let (kek, mut ring) = keyring();
    let p = sample("894400000000000001");
    let old = seal_personalisation(&ring, &p, &mut rand::rng()).expect("seal");
    ring.add_data_key(&kek, &mut rand::rng())
        .expect("second key");
    let new = seal_personalisation(&ring, &p, &mut rand::rng()).expect("seal");
    assert_eq!(stored_form(&old), Ok(StoredForm::Sealed { data_key: 1 }));
    assert_eq!(stored_form(&new), Ok(StoredForm::Sealed { data_key: 2 }));
    for text in [old, new] {
        open_personalisation(Some(&ring), &p.iccid, &text).expect("open");
    }
}
