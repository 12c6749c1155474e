//! Hostile input: random, truncated and mutated packages and batch files
//! must give errors, never panics.

// Test helpers outside #[test] functions unwrap fixed, known-good values.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use ferrosim_saip::{Iccid, Imsi, Personalisation, Pin, ProfilePackage, parse_batch};
use proptest::prelude::*;

fn fixture_bytes() -> &'static Vec<Vec<u8>> {
    static BYTES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BYTES.get_or_init(|| common::fixtures().into_iter().map(|f| f.bytes).collect())
}

fn personalisation() -> Personalisation {
    let mut p = Personalisation::new(Iccid::from_body("894944000000000001").unwrap());
    p.imsi = Some(Imsi::with_mnc_len("001010000000001", 2).unwrap());
    p.pin1 = Some(Pin::new("PIN1", "1234").unwrap());
    p
}

/// Runs everything a caller can do with a package; only errors may come out.
fn exercise(bytes: &[u8]) {
    if let Ok(package) = ProfilePackage::parse(bytes) {
        let _ = package.summary();
        let _ = package.metadata_defaults();
        let _ = package.header().iccid();
        let _ = package.validate_schema();
        for e in package.elements() {
            let _ = e.kind.to_string();
        }
        if let Ok(out) = package.personalise(&personalisation()) {
            // Whatever personalisation produced must parse again.
            let again = ProfilePackage::parse(&out);
            assert!(
                again.is_ok(),
                "personalised output does not parse: {again:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn random_tlv_shaped_input_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        tag in prop_oneof![Just(0xA0u8), Just(0xB0), Just(0xB3), Just(0xA2), Just(0xA3), Just(0xA4)],
    ) {
        // A plausible element wrapped around random content, between a real header and end.
        let fixture = &fixture_bytes()[0];
        let header_len = 3 + usize::from(fixture[2]);
        let mut bytes = fixture[..header_len].to_vec();
        bytes.push(tag);
        let mut len = Vec::new();
        ferrosim_asn1::tlv::write_length(&mut len, body.len());
        bytes.extend(len);
        bytes.extend(&body);
        bytes.extend(&fixture[fixture.len() - 9..]);
        exercise(&bytes);
    }

    #[test]
    fn truncated_packages_are_refused(which in 0usize..4, cut in 0usize..12_300) {
        let bytes = &fixture_bytes()[which];
        let cut = cut.min(bytes.len() - 1);
        prop_assert!(ProfilePackage::parse(&bytes[..cut]).is_err());
    }

    #[test]
    fn mutated_packages_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((0usize..12_300, any::<u8>()), 1..6),
    ) {
        let mut bytes = fixture_bytes()[which].clone();
        for (pos, value) in edits {
            let pos = pos % bytes.len();
            bytes[pos] = value;
        }
        exercise(&bytes);
    }

    #[test]
    fn spliced_packages_never_panic(which in 0usize..4, start in 0usize..12_300, len in 0usize..64) {
        let bytes = &fixture_bytes()[which];
        let start = start % bytes.len();
        let end = (start + len).min(bytes.len());
        let mut cut = bytes[..start].to_vec();
        cut.extend_from_slice(&bytes[end..]);
        exercise(&cut);
    }

    #[test]
    fn random_batch_text_never_panics(text in "\\PC{0,300}") {
        let _ = parse_batch(&text);
    }

    #[test]
    fn batch_rows_of_random_cells_never_panic(
        cells in proptest::collection::vec(proptest::collection::vec("[0-9a-fA-F ,\"#-]{0,40}", 0..11), 0..6),
    ) {
        let mut text = String::from("iccid,imsi,ki,opc,pin1,puk1,pin2,puk2,adm1\n");
        for row in cells {
            text.push_str(&row.join(","));
            text.push('\n');
        }
        let _ = parse_batch(&text);
    }

    #[test]
    fn truncated_batch_files_never_panic(cut in 0usize..400) {
        let text = "iccid,imsi,ki,opc,pin1\n8949449999999990049,001010123456063,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff,1234\n8949449999999990098,001010123456064,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff,\n";
        let cut = cut.min(text.len());
        let _ = parse_batch(&text[..cut]);
    }
}
