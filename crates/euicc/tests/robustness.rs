//! Damaged Bound Profile Packages: whatever byte of whatever piece changes,
//! or wherever a piece is cut, the eUICC never installs the profile and
//! never panics.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    FakeSmdp, card, challenge, es10, es10_sw, fixture, open_isdr, pir_result, pki, split_bpp,
};
use ferrosim_smdp::metadata::PolicyRules;
use proptest::prelude::*;

/// A card in a download session and the pieces of a package bound to it.
fn session_and_pieces() -> (ferrosim_euicc::VirtualEuicc, u8, Vec<Vec<u8>>) {
    let server = FakeSmdp::new(pki());
    let mut c = card();
    let ch = open_isdr(&mut c);
    let chal = challenge(&mut c, ch);
    let auth = es10(&mut c, ch, &server.authenticate_server(&chal));
    let prepared = es10(
        &mut c,
        ch,
        &server.prepare_download(&auth, &server.transaction_id, None),
    );
    let package = fixture().0;
    let metadata = server.metadata(&package, PolicyRules::default());
    let eid = c.identity().eid().to_bcd();
    let bpp = server.bpp(&server.transaction_id, &eid, &prepared, &metadata, &package);
    (c, ch, split_bpp(&bpp))
}

/// Sends the pieces; returns the installation result if one came.
fn send(c: &mut ferrosim_euicc::VirtualEuicc, ch: u8, pieces: &[Vec<u8>]) -> Option<Vec<u8>> {
    for piece in pieces {
        if piece.is_empty() {
            continue;
        }
        let (data, sw) = es10_sw(c, ch, piece, 255);
        assert!(
            sw == 0x9000 || sw >> 8 == 0x6A || sw == 0x6985,
            "SW {sw:04X}"
        );
        if !data.is_empty() {
            return Some(data);
        }
    }
    None
}

#[test]
fn the_undamaged_package_installs() {
    let (mut c, ch, pieces) = session_and_pieces();
    let pir = send(&mut c, ch, &pieces).unwrap();
    assert!(pir_result(&pir).is_ok());
    // The BF37 as SGP.22 lays it out, for SM-DP+ implementations that walk
    // the TLVs: BF27 { 80 tid, BF2F metadata, 06 OID, A2 { A0 success } }, 5F37.
    let outer = ferrosim_asn1::tlv::Tlv::parse_tagged(&pir, 0xBF37).unwrap();
    let tags =
        |t: &ferrosim_asn1::tlv::Tlv<'_>| t.children().map(|c| c.unwrap().tag).collect::<Vec<_>>();
    assert_eq!(tags(&outer), [0xBF27, 0x5F37]);
    let data = outer.require(0xBF27).unwrap();
    assert_eq!(tags(&data), [0x80, 0xBF2F, 0x06, 0xA2]);
    let final_result = data.require(0xA2).unwrap();
    assert_eq!(tags(&final_result), [0xA0]);
    assert_eq!(tags(&final_result.require(0xA0).unwrap()), [0x4F, 0x04]);
    assert_eq!(
        tags(&data.require(0xBF2F).unwrap()),
        [0x80, 0x81, 0x0C, 0x5A]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_changed_byte_is_never_installed(piece in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (mut c, ch, mut pieces) = session_and_pieces();
        let piece = piece.index(pieces.len());
        let at = at.index(pieces[piece].len());
        pieces[piece][at] ^= xor;
        if let Some(pir) = send(&mut c, ch, &pieces) {
            prop_assert!(pir_result(&pir).is_err());
            common::verify_pir(&c, &pir);
        }
        prop_assert!(c.state().profiles.is_empty());
    }

    #[test]
    fn a_cut_piece_is_never_installed(piece in any::<prop::sample::Index>(), keep in any::<prop::sample::Index>()) {
        let (mut c, ch, mut pieces) = session_and_pieces();
        let piece = piece.index(pieces.len());
        let keep = keep.index(pieces[piece].len());
        pieces[piece].truncate(keep);
        if let Some(pir) = send(&mut c, ch, &pieces) {
            prop_assert!(pir_result(&pir).is_err());
        }
        prop_assert!(c.state().profiles.is_empty());
    }
}
