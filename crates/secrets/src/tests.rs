#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::*;
use proptest::prelude::*;

const K: &[u8] = &[0x11; 16];

fn ring(kek: &Kek) -> (Keyring, Vec<(u32, Vec<u8>)>) {
    let mut r = Keyring::unwrap_all(kek, []).unwrap();
    let w = r.add_data_key(kek, &mut rand::rng()).unwrap();
    (r, vec![w])
}

#[test]
fn sealed_secrets_open_only_in_their_place() {
    let kek = Kek::generate(&mut rand::rng());
    let (r, _) = ring(&kek);
    let sealed = r
        .seal(b"8944000000000000019/k", K, &mut rand::rng())
        .unwrap();
    assert!(
        !sealed.windows(K.len()).any(|w| w == K),
        "plaintext visible"
    );
    assert_eq!(&*r.open(b"8944000000000000019/k", &sealed).unwrap(), K);
    // Moved to another row or column.
    assert_eq!(
        r.open(b"8944000000000000027/k", &sealed),
        Err(SecretError::Forged)
    );
    assert_eq!(
        r.open(b"8944000000000000019/opc", &sealed),
        Err(SecretError::Forged)
    );
    // Changed.
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        r.open(b"8944000000000000019/k", &bad),
        Err(SecretError::Forged)
    );
    // Two seals of one value differ (random nonces).
    assert_ne!(
        sealed,
        r.seal(b"8944000000000000019/k", K, &mut rand::rng())
            .unwrap()
    );
}

#[test]
fn kek_rotation_rewraps_without_touching_sealed_values() {
    let old = Kek::generate(&mut rand::rng());
    let (mut r, mut stored) = ring(&old);
    let a = r.seal(b"a", K, &mut rand::rng()).unwrap();
    stored.push(r.add_data_key(&old, &mut rand::rng()).unwrap());
    let b = r.seal(b"b", K, &mut rand::rng()).unwrap();
    assert_eq!(
        (Keyring::data_key_of(&a), Keyring::data_key_of(&b)),
        (Ok(1), Ok(2))
    );

    let new = Kek::generate(&mut rand::rng());
    let rewrapped = r.rewrap(&new, &mut rand::rng()).unwrap();
    // A keyring from the re-wrapped keys and the new KEK opens old values.
    let r2 = Keyring::unwrap_all(&new, rewrapped.clone()).unwrap();
    assert_eq!(&*r2.open(b"a", &a).unwrap(), K);
    assert_eq!(&*r2.open(b"b", &b).unwrap(), K);
    // The old KEK no longer unwraps them; the new one does not unwrap the old.
    assert!(matches!(
        Keyring::unwrap_all(&old, rewrapped),
        Err(SecretError::OtherKek { dek: 1, .. })
    ));
    assert!(matches!(
        Keyring::unwrap_all(&new, stored),
        Err(SecretError::OtherKek { .. })
    ));
}

#[test]
fn kek_files_and_bad_input() {
    let kek = Kek::generate(&mut rand::rng());
    let again =
        Kek::from_file_content(format!("{}\n", kek.to_hex().unwrap().as_str()).as_bytes()).unwrap();
    assert_eq!(again.id(), kek.id());
    assert_eq!(
        Kek::from_file_content(&[7; 32]).unwrap().id(),
        Kek::from_bytes([7; 32]).id()
    );
    for bad in [&b"short"[..], b"zz", &[0xff; 33], b"00112233"] {
        assert!(matches!(
            Kek::from_file_content(bad),
            Err(SecretError::BadKek(_))
        ));
    }
    assert!(!format!("{kek:?}").contains(kek.to_hex().unwrap().as_str()));
    let empty = Keyring::unwrap_all(&kek, []).unwrap();
    assert_eq!(
        empty.seal(b"", K, &mut rand::rng()),
        Err(SecretError::NoDataKey)
    );
    let (r, _) = ring(&kek);
    assert_eq!(r.open(b"", &[]), Err(SecretError::Malformed("empty")));
    assert_eq!(
        r.open(b"", &[2; 40]),
        Err(SecretError::Malformed("unknown version"))
    );
    assert_eq!(
        r.open(b"", &[1; 10]),
        Err(SecretError::Malformed("truncated"))
    );
    let mut other = vec![1, 0, 0, 0, 9];
    other.extend_from_slice(&[0; 28]);
    assert_eq!(r.open(b"", &other), Err(SecretError::UnknownDataKey(9)));
}

proptest! {
    #[test]
    fn garbage_never_opens_or_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let kek = Kek::from_bytes([3; 32]);
        let (r, _) = ring(&kek);
        prop_assert!(r.open(b"x", &bytes).is_err());
        prop_assert!(Keyring::unwrap_all(&kek, [(1, bytes.clone())]).is_err());
    }
}

/// A KEK held "elsewhere": AES-GCM through [`KekCipher`], as a token does.
struct Elsewhere([u8; KEY_LEN]);

impl KekCipher for Elsewhere {
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let mut body = plaintext.to_vec();
        aead(&self.0)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SecretError::Crypto)?;
        Ok(body)
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = aead(&self.0)?
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| SecretError::Forged)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[test]
fn an_external_kek_wraps_and_rotation_moves_keys_to_it() {
    let mut rng = rand::rng();
    let file_kek = Kek::from_bytes([3u8; KEY_LEN]);
    let token = Kek::external(Box::new(Elsewhere([4u8; KEY_LEN]))).unwrap();
    let again = Kek::external(Box::new(Elsewhere([4u8; KEY_LEN]))).unwrap();
    let other = Kek::external(Box::new(Elsewhere([5u8; KEY_LEN]))).unwrap();
    assert_eq!(token.id(), again.id(), "the id names the key");
    assert_ne!(token.id(), other.id());
    assert!(token.to_hex().is_none(), "a token key is not exported");

    let mut ring = Keyring::unwrap_all(&file_kek, []).unwrap();
    let (id, _) = ring.add_data_key(&file_kek, &mut rng).unwrap();
    let sealed = ring.seal(b"row", b"K and OPc", &mut rng).unwrap();
    // KEK rotation from the file to the token.
    let moved = ring.rewrap(&token, &mut rng).unwrap();
    let from_token = Keyring::unwrap_all(&again, moved.clone()).unwrap();
    assert_eq!(&*from_token.open(b"row", &sealed).unwrap(), b"K and OPc");
    assert_eq!(from_token.newest_data_key(), Some(id));
    assert!(matches!(
        Keyring::unwrap_all(&file_kek, moved.clone()),
        Err(SecretError::OtherKek { .. })
    ));
    // A token key that claims the id but is another key does not open it.
    let impostor = Kek {
        key: KekKey::External(Box::new(Elsewhere([5u8; KEY_LEN]))),
        id: token.id(),
    };
    assert_eq!(
        Keyring::unwrap_all(&impostor, moved).unwrap_err(),
        SecretError::Forged
    );
}
