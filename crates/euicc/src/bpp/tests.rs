//! Loader tests against the `bpp_decode` vector of osmo-smdpp (pySim): its
//! segments are double-framed and 1036 bytes long, and its profile segments
//! use PPKs given beside the package, so the test sets the keys itself
//! where InitialiseSecureChannel and ReplaceSessionKeys would.

use ferrosim_asn1::json::Base64;
use ferrosim_crypto::kdf::SessionKeys;
use ferrosim_crypto::key::SoftwareKey;

use super::*;

struct Vector {
    bpp: Vec<u8>,
    upp: Vec<u8>,
    keys: SessionKeys,
    ppk: SessionKeys,
    metadata: Vec<u8>,
}

fn vector() -> Vector {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/bsp-kat.json"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let v = &json["bpp_decode"];
    let b64 = |k: &str| Base64::decode(v[k].as_str().unwrap()).unwrap().0;
    let hex16 = |k: &str| -> [u8; 16] {
        hex::decode(v[k].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    Vector {
        bpp: b64("bound_profile_package_b64"),
        upp: b64("unprotected_profile_package_b64"),
        keys: SessionKeys {
            initial_mcv: hex16("initial_mcv"),
            s_enc: hex16("s_enc"),
            s_mac: hex16("s_mac"),
        },
        ppk: SessionKeys {
            initial_mcv: hex16("ppk_initial_mcv"),
            s_enc: hex16("ppk_enc"),
            s_mac: hex16("ppk_mac"),
        },
        metadata: hex::decode(v["store_metadata_plain"].as_str().unwrap()).unwrap(),
    }
}

/// A loader past InitialiseSecureChannel with the vector's session keys.
fn loader_after_init(v: &Vector) -> (BppLoader, Vec<Vec<u8>>) {
    let root = Tlv::parse_tagged(&v.bpp, TAG_BPP).unwrap();
    let children: Vec<Tlv<'_>> = root.children().map(Result::unwrap).collect();
    let mut loader = BppLoader::new();
    loader.stage = Stage::GroupHeader(Group::ConfigureIsdp);
    loader.package_left = root.value.len() - children[0].raw.len();
    loader.bsp = Some(BspDecryptor::new(&v.keys).with_max_segment_len(LENIENT_MAX_SEGMENT_LEN));
    let mut pieces = Vec::new();
    for child in &children[1..] {
        match child.tag {
            0xA1 | 0xA3 => {
                pieces.push(child.header().to_vec());
                pieces.extend(child.children().map(|s| s.unwrap().raw.to_vec()));
            }
            _ => pieces.push(child.raw.to_vec()),
        }
    }
    (loader, pieces)
}

struct Binding {
    dppb: VerifyingKey,
    otk: OneTimeKeyPair,
}

impl Binding {
    fn new() -> Self {
        Self {
            dppb: SoftwareKey::generate().unwrap().verifying_key().unwrap(),
            otk: OneTimeKeyPair::generate().unwrap(),
        }
    }

    fn session(&self) -> SessionBinding<'_> {
        SessionBinding {
            transaction_id: &[1, 2, 3],
            dppb: &self.dppb,
            one_time_key: &self.otk,
            eid: &[0x89; 16],
        }
    }
}

fn accept(_: &rsp::StoreMetadataRequest) -> Result<(), InstallErrorReason> {
    Ok(())
}

#[test]
fn loads_the_osmo_smdpp_vector_piece_by_piece() {
    let v = vector();
    let (mut loader, pieces) = loader_after_init(&v);
    let binding = Binding::new();
    let session = binding.session();
    let mut outcome = None;
    for piece in &pieces {
        // The vector's package has no A2: its PPKs are given beside it.
        if piece[0] == 0xA3 {
            loader.bsp.as_mut().unwrap().replace_session_keys(&v.ppk);
        }
        match loader.feed(piece, &session, &accept).unwrap() {
            Progress::NeedMore => assert!(outcome.is_none()),
            Progress::Complete(done) => outcome = Some(done),
        }
    }
    let loaded = outcome.expect("complete after the last segment");
    assert_eq!(loaded.metadata_der, v.metadata);
    assert_eq!(loaded.package.as_slice(), v.upp.as_slice());
    assert_eq!(loaded.dp_oid, None);
    // osmo-smdpp codes this metadata ICCID in plain BCD.
    assert_eq!(
        ferrosim_saip::bcd::in_order_digits(loaded.metadata.iccid.0.as_ref()).unwrap(),
        "89000123456789012341"
    );
}

#[test]
fn a_tampered_segment_stops_the_load() {
    let v = vector();
    let (mut loader, mut pieces) = loader_after_init(&v);
    let binding = Binding::new();
    let session = binding.session();
    let target = pieces.iter().rposition(|p| p[0] == 0x86).unwrap() - 2;
    let len = pieces[target].len();
    pieces[target][len - 20] ^= 0x01;
    for (i, piece) in pieces.iter().enumerate() {
        if piece[0] == 0xA3 {
            loader.bsp.as_mut().unwrap().replace_session_keys(&v.ppk);
        }
        match loader.feed(piece, &session, &accept) {
            Ok(Progress::NeedMore) => assert!(i < target, "piece {i} accepted"),
            Ok(Progress::Complete(_)) => panic!("tampered package completed"),
            Err(failure) => {
                assert_eq!(i, target);
                assert_eq!(
                    failure,
                    LoadFailure {
                        command: BppCommandId::LoadProfileElements,
                        reason: InstallErrorReason::Scp03tSecurityError,
                    }
                );
                return;
            }
        }
    }
    panic!("no failure");
}

#[test]
fn out_of_order_and_truncated_pieces_are_structure_errors() {
    let v = vector();
    let binding = Binding::new();
    let session = binding.session();
    // A1 before A0.
    let (mut loader, pieces) = loader_after_init(&v);
    let err = loader.feed(&pieces[1], &session, &accept).err().unwrap();
    assert_eq!(err.reason, InstallErrorReason::Scp03tStructureError);
    assert_eq!(err.command, BppCommandId::ConfigureIsdp);
    // A truncated A0.
    let (mut loader, pieces) = loader_after_init(&v);
    let a0 = &pieces[0];
    let err = loader
        .feed(&a0[..a0.len() - 1], &session, &accept)
        .err()
        .unwrap();
    assert_eq!(err.reason, InstallErrorReason::Scp03tStructureError);
    // Segments skipped: the MAC chain breaks.
    let (mut loader, pieces) = loader_after_init(&v);
    loader.feed(&pieces[0], &session, &accept).unwrap();
    loader.feed(&pieces[1], &session, &accept).unwrap();
    loader.feed(&pieces[2], &session, &accept).unwrap();
    loader.bsp.as_mut().unwrap().replace_session_keys(&v.ppk);
    loader.feed(&pieces[3], &session, &accept).unwrap();
    let err = loader.feed(&pieces[5], &session, &accept).err().unwrap();
    assert_eq!(err.reason, InstallErrorReason::Scp03tSecurityError);
    // Bytes after the end of the package.
    let (mut loader, pieces) = loader_after_init(&v);
    let mut all = pieces.concat();
    all.push(0x00);
    loader.bsp.as_mut().unwrap();
    let err = loader.feed(&all, &session, &accept).err().unwrap();
    // (The profile segments fail first: the PPKs were never installed.)
    assert_eq!(err.command, BppCommandId::LoadProfileElements);
}

#[test]
fn metadata_refusal_is_reported_on_store_metadata() {
    let v = vector();
    let (mut loader, pieces) = loader_after_init(&v);
    let binding = Binding::new();
    let session = binding.session();
    let refuse = |_: &rsp::StoreMetadataRequest| Err(InstallErrorReason::IccidAlreadyExistsOnEuicc);
    loader.feed(&pieces[0], &session, &refuse).unwrap();
    loader.feed(&pieces[1], &session, &refuse).unwrap();
    let err = loader.feed(&pieces[2], &session, &refuse).err().unwrap();
    assert_eq!(
        err,
        LoadFailure {
            command: BppCommandId::StoreMetadata,
            reason: InstallErrorReason::IccidAlreadyExistsOnEuicc,
        }
    );
}
