//! Personalisation of real and synthetic packages: the new values must read
//! back, and every byte outside the patched values must stay as it was.

// Test helpers outside #[test] functions unwrap fixed, known-good values.
#![allow(clippy::unwrap_used)]

mod common;

use ferrosim_asn1::tlv::tlv;
use ferrosim_saip::{
    AdmKey, AkaParameters, Error, Iccid, Imsi, KEY_REF_ADM1, KEY_REF_PIN1, KEY_REF_PIN2, Key128,
    Personalisation, Pin, ProfilePackage, Puk,
};
use rand::SeedableRng;

fn full_personalisation() -> Personalisation {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5A1F);
    let mut p = Personalisation::new(Iccid::from_body("894944000000000001").unwrap())
        .with_random_keys(&mut rng);
    p.imsi = Some("001-01-9876543210".parse().unwrap());
    p.pin1 = Some(Pin::new("PIN1", "1234").unwrap());
    p.pin2 = Some(Pin::new("PIN2", "43210").unwrap());
    p.puk1 = Some(Puk::new("PUK1", "87654321").unwrap());
    p.puk2 = Some(Puk::new("PUK2", "12344321").unwrap());
    p.adm1 = Some(AdmKey::new("ADM1", "0102030405060708").unwrap());
    p
}

/// Replaces every occurrence of `old` by `new` (same length) in `bytes`;
/// returns how many were replaced.
fn replace_all(bytes: &mut [u8], old: &[u8], new: &[u8]) -> usize {
    assert_eq!(old.len(), new.len());
    let mut count = 0;
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if &bytes[i..i + old.len()] == old {
            bytes[i..i + old.len()].copy_from_slice(new);
            count += 1;
            i += old.len();
        } else {
            i += 1;
        }
    }
    count
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The expected output, derived from the original bytes by replacing the
/// known TLVs of the TS.48 values in place (independent of the personaliser).
fn expected_bytes(original: &[u8], old_iccid: &Iccid, p: &Personalisation) -> Vec<u8> {
    let mut out = original.to_vec();
    let count = |n: usize, what: &str, want: std::ops::RangeInclusive<usize>| {
        assert!(want.contains(&n), "{what}: {n} occurrence(s)");
    };
    let hdr_old = cat(&[&[0x83, 0x0A], &old_iccid.to_header_bcd()]);
    let hdr_new = cat(&[&[0x83, 0x0A], &p.iccid.to_header_bcd()]);
    count(
        replace_all(&mut out, &hdr_old, &hdr_new),
        "header ICCID",
        1..=1,
    );
    let ef_old = cat(&[&[0x83, 0x0A], &old_iccid.to_bcd()]);
    let ef_new = cat(&[&[0x83, 0x0A], &p.iccid.to_bcd()]);
    count(replace_all(&mut out, &ef_old, &ef_new), "EF.ICCID", 1..=1);
    let imsi_old = cat(&[
        &[0x83, 0x09],
        &Imsi::new("001010123456063").unwrap().to_ef_imsi(),
    ]);
    let imsi_new = cat(&[&[0x83, 0x09], &p.imsi.as_ref().unwrap().to_ef_imsi()]);
    count(
        replace_all(&mut out, &imsi_old, &imsi_new),
        "EF.IMSI",
        1..=1,
    );
    let k_old: Vec<u8> = (0u8..16).collect();
    let keys_old = cat(&[&[0x82, 0x10], &k_old, &[0x83, 0x10], &[0; 16]]);
    let keys_new = cat(&[
        &[0x82, 0x10],
        p.k.as_ref().unwrap().as_bytes(),
        &[0x83, 0x10],
        p.opc.as_ref().unwrap().as_bytes(),
    ]);
    count(replace_all(&mut out, &keys_old, &keys_new), "K/OPc", 2..=2);
    let code = |key_ref: &[u8], value: &[u8]| {
        cat(&[&[0x80, key_ref.len() as u8], key_ref, &[0x81, 0x08], value])
    };
    let pin1_new = code(&[0x01], p.pin1.as_ref().unwrap().as_bytes());
    count(
        replace_all(&mut out, &code(&[0x01], b"0000\xFF\xFF\xFF\xFF"), &pin1_new),
        "PIN1",
        1..=1,
    );
    let pin2_new = code(&[0x00, 0x81], p.pin2.as_ref().unwrap().as_bytes());
    count(
        replace_all(
            &mut out,
            &code(&[0x00, 0x81], b"9999\xFF\xFF\xFF\xFF"),
            &pin2_new,
        ),
        "PIN2",
        3..=5,
    );
    let adm1_new = code(&[0x0A], p.adm1.as_ref().unwrap().as_bytes());
    count(
        replace_all(&mut out, &code(&[0x0A], b"55555555"), &adm1_new),
        "ADM1",
        1..=1,
    );
    let puk1_new = code(&[0x01], p.puk1.as_ref().unwrap().as_bytes());
    count(
        replace_all(&mut out, &code(&[0x01], b"11111111"), &puk1_new),
        "PUK1",
        1..=1,
    );
    let puk2_new = code(&[0x00, 0x81], p.puk2.as_ref().unwrap().as_bytes());
    count(
        replace_all(&mut out, &code(&[0x00, 0x81], b"22222222"), &puk2_new),
        "PUK2",
        1..=1,
    );
    out
}

#[test]
fn personalised_packages_read_back_the_new_values() {
    let p = full_personalisation();
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap();
        let out = package
            .personalise(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let again =
            ProfilePackage::parse(&out).unwrap_or_else(|e| panic!("{}: reparse: {e}", f.name));
        let s = again.summary().unwrap();
        assert_eq!(s.iccid, "8949440000000000016");
        assert_eq!(s.ef_iccid.as_deref(), Some("8949440000000000016"));
        assert_eq!(again.header().iccid().unwrap(), p.iccid);
        assert_eq!(s.imsi.as_ref().map(Imsi::as_str), Some("001019876543210"));
        assert_eq!(s.imsi.as_ref().and_then(Imsi::mnc), Some("01"));
        for aka in &s.aka {
            let AkaParameters::Algorithm { k, opc, .. } = aka else {
                panic!("{}: unexpected mapping", f.name)
            };
            assert_eq!(k.as_slice(), p.k.as_ref().unwrap().as_bytes());
            assert_eq!(opc.as_slice(), p.opc.as_ref().unwrap().as_bytes());
        }
        assert_eq!(
            s.pin(KEY_REF_PIN1).and_then(|x| x.digits()).as_deref(),
            Some("1234")
        );
        let pin2s: Vec<_> = s
            .pins
            .iter()
            .filter(|x| x.key_reference == KEY_REF_PIN2)
            .collect();
        assert!(pin2s.iter().all(|x| x.digits().as_deref() == Some("43210")));
        assert_eq!(
            s.pin(KEY_REF_ADM1).map(|x| x.value),
            Some([1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(
            s.pin(0x0B).and_then(|x| x.digits()).as_deref(),
            Some("66666666"),
            "ADM2 kept"
        );
        assert_eq!(
            s.puk(1).and_then(|x| x.digits()).as_deref(),
            Some("87654321")
        );
        assert_eq!(
            s.puk(0x81).and_then(|x| x.digits()).as_deref(),
            Some("12344321")
        );
        assert_eq!(s.spn.as_deref(), Some("GSMA_TEST"));

        // Byte-exact: the output is the input with exactly those values replaced.
        let old_iccid = Iccid::new(f.iccid).unwrap();
        assert_eq!(out, expected_bytes(&f.bytes, &old_iccid, &p), "{}", f.name);
        // Elements the personalisation does not touch are byte-identical.
        let untouched = |e: &ferrosim_saip::ProfileElement<'_>| {
            !matches!(
                e.kind,
                ferrosim_saip::ElementKind::Header
                    | ferrosim_saip::ElementKind::Mf
                    | ferrosim_saip::ElementKind::Usim
                    | ferrosim_saip::ElementKind::AkaParameter
                    | ferrosim_saip::ElementKind::PinCodes
                    | ferrosim_saip::ElementKind::PukCodes
            )
        };
        let before: Vec<_> = package
            .elements()
            .filter(untouched)
            .map(|e| e.raw.to_vec())
            .collect();
        let after: Vec<_> = again
            .elements()
            .filter(untouched)
            .map(|e| e.raw.to_vec())
            .collect();
        assert_eq!(before, after, "{}", f.name);
        // Personalising twice with the same values changes nothing more.
        assert_eq!(again.personalise(&p).unwrap(), out);
    }
}

#[test]
fn iccid_only_changes_two_values() {
    let f = &common::fixtures()[0];
    let package = ProfilePackage::parse(&f.bytes).unwrap();
    let p = Personalisation::new(Iccid::new("89000123456789012341").unwrap());
    let out = package.personalise(&p).unwrap();
    let diff: Vec<usize> = (0..out.len()).filter(|i| out[*i] != f.bytes[*i]).collect();
    assert_eq!(out.len(), f.bytes.len());
    assert!(
        !diff.is_empty() && diff.len() <= 20,
        "{} bytes differ",
        diff.len()
    );
    let s = ProfilePackage::parse(&out).unwrap().summary().unwrap();
    assert_eq!(s.iccid, "89000123456789012341");
    assert_eq!(s.ef_iccid.as_deref(), Some("89000123456789012341"));
    assert_eq!(s.imsi.as_ref().map(Imsi::as_str), Some("001010123456063"));
}

#[test]
fn three_digit_mnc_updates_ef_ad() {
    let f = &common::fixtures()[2];
    let package = ProfilePackage::parse(&f.bytes).unwrap();
    let mut p = Personalisation::new(Iccid::from_body("894944000000000002").unwrap());
    p.imsi = Some(Imsi::with_mnc_len("310260123456789", 3).unwrap());
    let out = package.personalised(&p).unwrap();
    let s = out.summary().unwrap();
    assert_eq!(s.imsi.as_ref().and_then(Imsi::mnc), Some("260"));
    // EF.AD content 80 00 00 02 became 80 00 00 03; nothing else in it moved.
    let old_ad = [0x83, 0x04, 0x80, 0x00, 0x00, 0x02];
    let new_ad = [0x83, 0x04, 0x80, 0x00, 0x00, 0x03];
    let count = |bytes: &[u8], pat: &[u8]| bytes.windows(pat.len()).filter(|w| *w == pat).count();
    assert_eq!(count(&f.bytes, &old_ad), 1);
    assert_eq!(count(out.as_bytes(), &old_ad), 0);
    assert_eq!(count(out.as_bytes(), &new_ad), 1);
}

// ---- synthetic packages -------------------------------------------------

fn pe_header(id: u8) -> Vec<u8> {
    tlv(0xA0, &[0x81, 0x01, id])
}

fn header(iccid: &Iccid) -> Vec<u8> {
    let mut v = vec![0x80, 0x01, 0x02, 0x81, 0x01, 0x03];
    v.extend(tlv(0x83, &iccid.to_header_bcd()));
    v.extend([0xA5, 0x00, 0xA6, 0x00]);
    tlv(0xA0, &v)
}

fn mf(iccid: &Iccid) -> Vec<u8> {
    let ef_iccid = tlv(0xA4, &tlv(0x83, &iccid.to_bcd()));
    tlv(
        0xB0,
        &[
            pe_header(1),
            tlv(0x81, &[0x67, 0x81, 0x0F, 0x01, 0x02, 0x01]),
            ef_iccid,
        ]
        .concat(),
    )
}

fn end(id: u8) -> Vec<u8> {
    tlv(0xAA, &pe_header(id))
}

fn package(parts: &[Vec<u8>]) -> ProfilePackage {
    ProfilePackage::parse(&parts.concat()).unwrap()
}

#[test]
fn imsi_written_in_pieces_is_rewritten_whole() {
    let iccid = Iccid::new("8949449999999990049").unwrap();
    let imsi = Imsi::new("001010123456063").unwrap().to_ef_imsi();
    // EF.IMSI given as an FCP, 4 bytes, an offset of 0 and 5 more bytes.
    let fcp = tlv(0xA1, &tlv(0x83, &[0x6F, 0x07]));
    let ef = tlv(
        0xA3,
        &[
            fcp.clone(),
            tlv(0x83, &imsi[..4]),
            tlv(0x82, &[0]),
            tlv(0x83, &imsi[4..]),
        ]
        .concat(),
    );
    let usim = tlv(
        0xB3,
        &[
            pe_header(2),
            tlv(0x81, &[0x67, 0x81, 0x0F, 0x01, 0x02, 0x04]),
            ef,
        ]
        .concat(),
    );
    let pkg = package(&[header(&iccid), mf(&iccid), usim, end(3)]);
    assert_eq!(
        pkg.summary().unwrap().imsi.unwrap().as_str(),
        "001010123456063"
    );

    let mut p = Personalisation::new(iccid.clone());
    p.imsi = Some(Imsi::new("26201123456789").unwrap());
    let out = pkg.personalised(&p).unwrap();
    assert_eq!(
        out.as_bytes().len(),
        pkg.as_bytes().len() - 5,
        "three TLVs became one"
    );
    assert_eq!(
        out.summary().unwrap().imsi.unwrap().as_str(),
        "26201123456789"
    );
    // The FCP is carried over untouched.
    let usim_out = out
        .elements_of(ferrosim_saip::ElementKind::Usim)
        .next()
        .unwrap();
    assert!(usim_out.raw.windows(fcp.len()).any(|w| w == fcp.as_slice()));

    // MNC length requested but the package has no EF.AD content.
    p.imsi = Some(Imsi::with_mnc_len("26201123456789", 2).unwrap());
    assert!(matches!(
        pkg.personalise(&p),
        Err(Error::NotInPackage { .. })
    ));
}

#[test]
fn values_without_a_place_are_refused() {
    let iccid = Iccid::new("8949449999999990049").unwrap();
    let minimal = package(&[header(&iccid), end(1)]);
    assert_eq!(
        minimal.personalise(&Personalisation::new(iccid.clone())),
        Err(Error::NotInPackage {
            what: "EF.ICCID (mf or iot element)"
        })
    );
    let with_mf = package(&[header(&iccid), mf(&iccid), end(2)]);
    let new_iccid = Iccid::from_body("894944000000000001").unwrap();
    let out = with_mf
        .personalised(&Personalisation::new(new_iccid.clone()))
        .unwrap();
    assert_eq!(out.header().iccid().unwrap(), new_iccid);
    assert_eq!(out.as_bytes().len(), with_mf.as_bytes().len());

    let mut p = Personalisation::new(new_iccid.clone());
    p.pin1 = Some(Pin::new("PIN1", "1234").unwrap());
    assert_eq!(
        with_mf.personalise(&p),
        Err(Error::NotInPackage {
            what: "PIN1 (key reference 01)"
        })
    );
    let mut p = Personalisation::new(new_iccid.clone());
    p.imsi = Some(Imsi::new("001010123456063").unwrap());
    assert_eq!(
        with_mf.personalise(&p),
        Err(Error::NotInPackage {
            what: "EF.IMSI (usim or iot element)"
        })
    );
    let mut p = Personalisation::new(new_iccid);
    p.k = Some(Key128::new([1; 16]));
    assert_eq!(
        with_mf.personalise(&p),
        Err(Error::NotInPackage {
            what: "akaParameter with algoParameter"
        })
    );
}

#[test]
fn key_length_must_match_the_package() {
    let iccid = Iccid::new("8949449999999990049").unwrap();
    // A TUAK algoParameter with a 256-bit key.
    let algo = [
        tlv(0x80, &[2]),
        tlv(0x81, &[0]),
        tlv(0x82, &[7; 32]),
        tlv(0x83, &[8; 32]),
    ]
    .concat();
    let aka = tlv(0xA4, &[pe_header(2), tlv(0xA1, &tlv(0xA1, &algo))].concat());
    let pkg = package(&[header(&iccid), mf(&iccid), aka, end(3)]);
    let s = pkg.summary().unwrap();
    assert_eq!(s.algorithm(), Some(ferrosim_saip::AkaAlgorithm::Tuak));
    assert_eq!(s.k().map(<[u8]>::len), Some(32));
    let mut p = Personalisation::new(iccid);
    p.k = Some(Key128::new([1; 16]));
    assert_eq!(
        pkg.personalise(&p),
        Err(Error::KeyLengthMismatch {
            field: "K",
            package: 32,
            supplied: 16
        })
    );
}

#[test]
fn batch_rows_personalise_a_package() {
    let f = &common::fixtures()[1];
    let package = ProfilePackage::parse(&f.bytes).unwrap();
    let batch = "ICCID,IMSI,Ki,OPc,PIN1,PUK1,PIN2,PUK2,ADM1\n\
        8949440000000000016,001010000000001,11111111111111111111111111111111,22222222222222222222222222222222,1111,11112222,2222,22223333,12345678\n\
        8949440000000000024,001010000000002,33333333333333333333333333333333,44444444444444444444444444444444,,,,,\n";
    let rows = ferrosim_saip::parse_batch(batch).unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let s = package.personalised(row).unwrap().summary().unwrap();
        assert_eq!(s.iccid, row.iccid.as_str());
        assert_eq!(
            s.imsi.as_ref().map(Imsi::as_str),
            row.imsi.as_ref().map(Imsi::as_str)
        );
        assert_eq!(s.k(), row.k.as_ref().map(|k| &k.as_bytes()[..]));
    }
    let s = package.personalised(&rows[1]).unwrap().summary().unwrap();
    assert_eq!(
        s.pin(KEY_REF_PIN1).and_then(|x| x.digits()).as_deref(),
        Some("0000"),
        "empty cell keeps PIN1"
    );
}
