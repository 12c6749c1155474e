use super::*;
use proptest::prelude::*;

fn keys(seed: u8) -> SessionKeys {
    SessionKeys {
        initial_mcv: [seed; 16],
        s_enc: [seed.wrapping_add(1); 16],
        s_mac: [seed.wrapping_add(2); 16],
    }
}

fn pair() -> (BspEncryptor, BspDecryptor) {
    (BspEncryptor::new(&keys(1)), BspDecryptor::new(&keys(1)))
}

#[test]
fn encrypt_then_decrypt_in_order() {
    let (mut enc, mut dec) = pair();
    let a = enc.encrypt_and_mac(0x87, b"\xBF\x24\x00").unwrap();
    let b = enc.mac_only(0x88, b"metadata").unwrap();
    let c = enc.encrypt_and_mac(0x86, &[0x55; 200]).unwrap();
    assert_eq!(enc.block_counter(), 4);
    let a = dec.verify_and_decrypt(&a).unwrap();
    assert_eq!((a.tag, a.data.as_slice()), (0x87, &b"\xBF\x24\x00"[..]));
    let b = dec.verify_mac_only(&b).unwrap();
    assert_eq!((b.tag, b.data), (0x88, &b"metadata"[..]));
    let c = dec.verify_and_decrypt(&c).unwrap();
    assert_eq!(c.data, vec![0x55; 200]);
    assert_eq!(dec.block_counter(), 4);
}

#[test]
fn segment_size_limits() {
    let (mut enc, mut dec) = pair();
    let seg = enc
        .encrypt_and_mac(0x86, &[1; MAX_ENCRYPTED_PLAIN_LEN])
        .unwrap();
    assert_eq!(seg.len(), MAX_SEGMENT_LEN);
    assert_eq!(&seg[..4], &[0x86, 0x82, 0x03, 0xF8]);
    dec.verify_and_decrypt(&seg).unwrap();
    assert!(matches!(
        enc.encrypt_and_mac(0x86, &[1; MAX_ENCRYPTED_PLAIN_LEN + 1]),
        Err(Error::SegmentTooLong {
            len: 1036,
            max: 1020
        })
    ));
    let seg = enc.mac_only(0x88, &[1; MAX_MAC_ONLY_PLAIN_LEN]).unwrap();
    assert_eq!(seg.len(), MAX_SEGMENT_LEN);
    dec.verify_mac_only(&seg).unwrap();
    assert!(matches!(
        enc.mac_only(0x88, &[1; MAX_MAC_ONLY_PLAIN_LEN + 1]),
        Err(Error::SegmentTooLong { .. })
    ));
    // A failed call does not advance the state: the next segment still verifies.
    let seg = enc.encrypt_and_mac(0x86, b"after").unwrap();
    assert_eq!(dec.verify_and_decrypt(&seg).unwrap().data, b"after");
    // The receiver refuses oversized input before doing any work.
    assert!(matches!(
        dec.verify_and_decrypt(&[0u8; 1021]),
        Err(Error::SegmentTooLong { .. })
    ));
}

#[test]
fn splitting_uses_largest_chunks() {
    let (mut enc, mut dec) = pair();
    let plain: Vec<u8> = (0..12_000u32).map(|i| i as u8).collect();
    let segments = enc.encrypt_and_mac_segments(0x86, &plain).unwrap();
    assert_eq!(
        segments.len(),
        plain.len().div_ceil(MAX_ENCRYPTED_PLAIN_LEN)
    );
    assert!(segments.iter().all(|s| s.len() <= MAX_SEGMENT_LEN));
    assert!(
        segments[..segments.len() - 1]
            .iter()
            .all(|s| s.len() == MAX_SEGMENT_LEN)
    );
    let mut out = Vec::new();
    for s in &segments {
        assert_eq!(dec.verify_and_decrypt_into(s, &mut out).unwrap(), 0x86);
    }
    assert_eq!(out, plain);

    // The appending variant gives the same bytes.
    let (mut enc2, _) = pair();
    let mut joined = Vec::new();
    let n = enc2
        .encrypt_and_mac_segments_into(0x86, &plain, &mut joined)
        .unwrap();
    assert_eq!(n, segments.len());
    assert_eq!(joined, segments.concat());
    assert_eq!(
        BspEncryptor::encrypted_segments_len(plain.len()),
        joined.len()
    );
    // The announced length matches what is written for every size around
    // the segment boundaries, the empty input included.
    for len in [0, 1, 15, 16, 1006, 1007, 1008, 2014, 2015, 4000] {
        let (mut enc, _) = pair();
        let mut out = Vec::new();
        enc.encrypt_and_mac_segments_into(0x86, &vec![0x5A; len], &mut out)
            .unwrap();
        assert_eq!(
            BspEncryptor::encrypted_segments_len(len),
            out.len(),
            "{len}"
        );
    }

    let (mut enc3, _) = pair();
    assert_eq!(enc3.encrypt_and_mac_segments(0x86, &[]).unwrap().len(), 1);
    assert_eq!(enc3.mac_only_segments(0x88, &[0; 2017]).unwrap().len(), 3);
}

#[test]
fn tampering_is_detected() {
    let (mut enc, _) = pair();
    let seg = enc.encrypt_and_mac(0x87, &[9; 40]).unwrap();
    for i in 0..seg.len() {
        let mut bad = seg.clone();
        bad[i] ^= 0x01;
        let mut dec = BspDecryptor::new(&keys(1));
        assert!(
            dec.verify_and_decrypt(&bad).is_err(),
            "flip at {i} accepted"
        );
        // State did not move: the genuine segment still opens.
        dec.verify_and_decrypt(&seg).unwrap();
    }
}

#[test]
fn wrong_counter_or_key_is_detected() {
    let (mut enc, mut dec) = pair();
    let first = enc.encrypt_and_mac(0x87, b"one").unwrap();
    let second = enc.encrypt_and_mac(0x87, b"two").unwrap();
    // Out of order: the MCV and counter do not match.
    assert!(matches!(
        dec.verify_and_decrypt(&second),
        Err(Error::MacMismatch)
    ));
    dec.verify_and_decrypt(&first).unwrap();
    // Replay of the first segment fails too.
    assert!(matches!(
        dec.verify_and_decrypt(&first),
        Err(Error::MacMismatch)
    ));
    dec.verify_and_decrypt(&second).unwrap();
    let mut other = BspDecryptor::new(&keys(7));
    let seg = BspEncryptor::new(&keys(1))
        .encrypt_and_mac(0x87, b"x")
        .unwrap();
    assert!(matches!(
        other.verify_and_decrypt(&seg),
        Err(Error::MacMismatch)
    ));
}

#[test]
fn only_the_ciphertext_counter_block_differs_with_counter() {
    // Same plaintext at counters 1 and 2 gives different ciphertext (ICV from counter).
    let mut a = BspEncryptor::new(&keys(1));
    let s1 = a.mac_only(0x88, b"m").unwrap();
    let s2 = a.encrypt_and_mac(0x87, b"same").unwrap();
    let mut b = BspEncryptor::new(&keys(1));
    let t1 = b.encrypt_and_mac(0x87, b"same").unwrap();
    assert_ne!(s2[2..18], t1[2..18]);
    assert_eq!(s1.len(), 1 + 1 + 1 + MAC_LEN);
}

#[test]
fn malformed_segments_are_typed_errors() {
    let (mut enc, _) = pair();
    let seg = enc.encrypt_and_mac(0x87, b"abc").unwrap();
    let mut dec = BspDecryptor::new(&keys(1));
    assert!(matches!(
        dec.verify_and_decrypt(&[]),
        Err(Error::MalformedSegment(_))
    ));
    assert!(matches!(
        dec.verify_and_decrypt(&seg[..seg.len() - 1]),
        Err(Error::MalformedSegment(_))
    ));
    let mut extra = seg.clone();
    extra.push(0);
    assert!(matches!(
        dec.verify_and_decrypt(&extra),
        Err(Error::MalformedSegment(_))
    ));
    assert!(matches!(
        dec.verify_and_decrypt(&[0x87, 0x03, 1, 2, 3]),
        Err(Error::MalformedSegment(_))
    ));
    // Ciphertext not a whole number of blocks.
    assert!(matches!(
        dec.verify_and_decrypt(&[0x87, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Error::BadPadding)
    ));
    assert!(matches!(
        dec.verify_and_decrypt(&[0x9F, 0x01, 0x00]),
        Err(Error::MalformedSegment(_))
    ));
    assert!(matches!(
        enc.encrypt_and_mac(0x9F, b"x"),
        Err(Error::InvalidParameter(_))
    ));
}

#[test]
fn bad_padding_with_valid_mac_is_reported() {
    // Build a segment whose plaintext block lacks 80 00.. padding but whose MAC is right,
    // by encrypting a full block with padding and cutting the padding block off.
    let k = keys(3);
    let mut enc = BspEncryptor::new(&k);
    let seg = enc.encrypt_and_mac(0x86, &[0u8; 16]).unwrap();
    // seg: 86 28 | 32 bytes ciphertext | 8 MAC. Keep the first block only and re-MAC.
    let cipher_first = &seg[2..18];
    let mut forged = vec![0x86, 0x18];
    forged.extend_from_slice(cipher_first);
    let key = aws_lc_rs::cmac::Key::new(aws_lc_rs::cmac::AES_128, &k.s_mac).unwrap();
    let mut mac_input = k.initial_mcv.to_vec();
    mac_input.extend_from_slice(&forged);
    let full = aws_lc_rs::cmac::sign(&key, &mac_input).unwrap();
    forged.extend_from_slice(&full.as_ref()[..8]);
    let mut dec = BspDecryptor::new(&k);
    let mut out = vec![0xAA];
    assert!(matches!(
        dec.verify_and_decrypt_into(&forged, &mut out),
        Err(Error::BadPadding)
    ));
    assert_eq!(out, vec![0xAA]);
    assert_eq!(dec.block_counter(), 1);
}

#[test]
fn replace_session_keys_round_trip() {
    let ppk = keys(40);
    let bf26 = encode_replace_session_keys(&ppk);
    assert_eq!(&bf26[..5], &[0xBF, 0x26, 0x36, 0x80, 0x10]);
    assert_eq!(decode_replace_session_keys(&bf26).unwrap(), ppk);
    for cut in 0..bf26.len() {
        assert!(decode_replace_session_keys(&bf26[..cut]).is_err());
    }
    let mut swapped = bf26.to_vec();
    swapped[3] = 0x81;
    assert!(decode_replace_session_keys(&swapped).is_err());

    let (mut enc, mut dec) = pair();
    let seg = enc.encrypt_and_mac(0x87, &bf26).unwrap();
    let opened = dec.verify_and_decrypt(&seg).unwrap();
    let received = decode_replace_session_keys(&opened.data).unwrap();
    enc.replace_session_keys(&ppk);
    dec.replace_session_keys(&received);
    assert_eq!(enc.block_counter(), 1);
    let seg = enc.encrypt_and_mac(0x86, b"profile").unwrap();
    assert_eq!(dec.verify_and_decrypt(&seg).unwrap().data, b"profile");
}

proptest! {
    #[test]
    fn random_segments_are_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let mut dec = BspDecryptor::new(&keys(1));
        prop_assert!(dec.verify_and_decrypt(&bytes).is_err());
        prop_assert!(dec.verify_mac_only(&bytes).is_err());
        prop_assert_eq!(dec.block_counter(), 1);
        let _ = decode_replace_session_keys(&bytes);
    }

    #[test]
    fn truncated_segments_are_rejected(len in 0usize..1007, cut in 0usize..1020) {
        let (mut enc, mut dec) = pair();
        let seg = enc.encrypt_and_mac(0x86, &vec![0x5A; len]).unwrap();
        let cut = cut % seg.len();
        prop_assert!(dec.verify_and_decrypt(&seg[..cut]).is_err());
        prop_assert_eq!(dec.verify_and_decrypt(&seg).unwrap().data, vec![0x5A; len]);
    }

    #[test]
    fn round_trip_any_length(plain in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let (mut enc, mut dec) = pair();
        let segs = enc.encrypt_and_mac_segments(0x86, &plain).unwrap();
        let mut out = Vec::new();
        for s in &segs {
            prop_assert!(s.len() <= MAX_SEGMENT_LEN);
            dec.verify_and_decrypt_into(s, &mut out).unwrap();
        }
        prop_assert_eq!(out, plain);
    }
}
