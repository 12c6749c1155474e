//! ES10 framing over a scripted fake card: channel handling, STORE DATA
//! block splitting, GET RESPONSE chaining, status word errors, and the typed
//! functions' result handling.

use ferrosim_asn1::tlv::{Tlv, tlv};

use super::types::{InstallationResult, NotificationOperation, ProfileId, ProfileState};
use super::*;

/// A card that logs every APDU and answers with `respond`.
struct FakeCard<F> {
    sent: Vec<Vec<u8>>,
    respond: F,
}

impl<F> std::fmt::Debug for FakeCard<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeCard({} APDUs)", self.sent.len())
    }
}

impl<F: FnMut(&[u8]) -> Vec<u8>> Transport for FakeCard<F> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.sent.push(command.to_vec());
        Ok((self.respond)(command))
    }
}

fn ok(data: &[u8]) -> Vec<u8> {
    [data, &[0x90, 0x00]].concat()
}

/// A card with channel 1 and the ISD-R, answering STORE DATA with `es10`
/// (given the reassembled command) once the last block arrives.
fn card(mut es10: impl FnMut(&[u8]) -> Vec<u8>) -> FakeCard<impl FnMut(&[u8]) -> Vec<u8>> {
    let mut pending = Vec::new();
    FakeCard {
        sent: Vec::new(),
        respond: move |apdu: &[u8]| match apdu {
            [0x00, 0x70, 0x00, 0x00, 0x01] => ok(&[0x01]),
            [0x01, 0xA4, 0x04, 0x00, 0x10, ..] => ok(&[]),
            [0x01, 0x70, 0x80, 0x01] => ok(&[]),
            [0x81, 0xE2, p1, _, lc, data @ ..] if usize::from(*lc) == data.len() => {
                pending.extend_from_slice(data);
                if *p1 == 0x91 {
                    let answer = es10(&pending);
                    pending.clear();
                    answer
                } else {
                    ok(&[])
                }
            }
            _ => vec![0x6D, 0x00],
        },
    }
}

fn open<F: FnMut(&[u8]) -> Vec<u8>>(card: FakeCard<F>, block_size: usize) -> Es10<FakeCard<F>> {
    let options = Es10Options {
        block_size,
        ..Es10Options::default()
    };
    Es10::open(card, &options).unwrap()
}

#[test]
fn open_selects_the_isd_r_on_a_logical_channel_and_close_frees_it() {
    let mut es10 = open(card(|_| ok(&[])), DEFAULT_BLOCK_SIZE);
    assert_eq!(es10.channel(), 1);
    let sent = es10.transport_mut().sent.clone();
    assert_eq!(sent[0], vec![0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!(
        sent[1],
        [&[0x01, 0xA4, 0x04, 0x00, 0x10][..], &ISD_R_AID, &[0x00]].concat()
    );
    let card = es10.close().unwrap();
    assert_eq!(card.sent.last().unwrap(), &vec![0x01, 0x70, 0x80, 0x01]);
}

#[test]
fn basic_channel_when_asked() {
    let fake = FakeCard {
        sent: Vec::new(),
        respond: |apdu: &[u8]| match apdu[1] {
            0xA4 => ok(&[]),
            _ => vec![0x6D, 0x00],
        },
    };
    let options = Es10Options {
        logical_channel: false,
        ..Es10Options::default()
    };
    let es10 = Es10::open(fake, &options).unwrap();
    assert_eq!(es10.channel(), 0);
    let fake = es10.close().unwrap();
    assert_eq!(fake.sent.len(), 1);
    assert_eq!(fake.sent[0][0], 0x00);
}

#[test]
fn store_data_splits_into_blocks_of_the_configured_size() {
    let request = tlv(0xBF99, &[0x5A; 295]); // 300 bytes
    for (block, sizes) in [
        (120, vec![120, 120, 60]),
        (255, vec![255, 45]),
        (2, vec![2; 150]),
    ] {
        let mut seen = Vec::new();
        let mut es10 = open(
            card(|cmd| {
                seen.push(cmd.to_vec());
                ok(&[0xAB])
            }),
            block,
        );
        assert_eq!(es10.transmit_es10(&request).unwrap(), vec![0xAB]);
        let stores: Vec<Vec<u8>> = es10
            .transport_mut()
            .sent
            .iter()
            .filter(|a| a[1] == 0xE2)
            .cloned()
            .collect();
        assert_eq!(
            stores.iter().map(|a| usize::from(a[4])).collect::<Vec<_>>(),
            sizes
        );
        for (i, apdu) in stores.iter().enumerate() {
            assert_eq!(apdu[0], 0x81, "CLA carries the channel");
            assert_eq!(apdu[2], if i + 1 == sizes.len() { 0x91 } else { 0x11 });
            assert_eq!(usize::from(apdu[3]), i, "P2 is the block number");
            assert_eq!(apdu.len(), 5 + sizes[i], "no Le");
        }
        drop(es10);
        assert_eq!(seen, vec![request.clone()]);
    }
}

#[test]
fn block_size_limits() {
    for size in [0, 256, 1000] {
        let e = Es10::open(
            card(|_| ok(&[])),
            &Es10Options {
                block_size: size,
                ..Es10Options::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Es10Error::InvalidBlockSize(s) if s == size));
    }
    let mut es10 = open(card(|_| ok(&[])), 1);
    assert!(matches!(
        es10.transmit_es10(&[0; 257]),
        Err(Es10Error::InvalidRequest { .. })
    ));
    assert!(matches!(
        es10.transmit_es10(&[]),
        Err(Es10Error::InvalidRequest { .. })
    ));
}

#[test]
fn get_response_follows_61xx() {
    let body: Vec<u8> = (0..=255u8).chain(0..44).collect(); // 300 bytes
    let mut rest: Vec<u8> = Vec::new();
    let full = body.clone();
    let fake = FakeCard {
        sent: Vec::new(),
        respond: move |apdu: &[u8]| match apdu {
            [0x00, 0x70, 0x00, 0x00, 0x01] => ok(&[0x01]),
            [0x01, 0xA4, ..] => ok(&[]),
            [0x81, 0xE2, 0x11, ..] => ok(&[]),
            // The last STORE DATA block: the first 100 bytes, then 61xx.
            [0x81, 0xE2, 0x91, ..] => {
                rest = full[100..].to_vec();
                [&full[..100], &[0x61, 0xC8][..]].concat()
            }
            // GET RESPONSE in the proprietary class on channel 1.
            [0x81, 0xC0, 0x00, 0x00, le] => {
                let n = if *le == 0 { 256 } else { usize::from(*le) }.min(rest.len());
                let chunk: Vec<u8> = rest.drain(..n).collect();
                let sw = match rest.len() {
                    0 => vec![0x90, 0x00],
                    left => vec![0x61, u8::try_from(left.min(255)).unwrap_or(0)],
                };
                [chunk, sw].concat()
            }
            _ => vec![0x6D, 0x00],
        },
    };
    let mut es10 = open(fake, 16);
    assert_eq!(es10.transmit_es10(&tlv(0xBF2D, &[0; 30])).unwrap(), body);
    let gets: Vec<u8> = es10
        .transport_mut()
        .sent
        .iter()
        .filter(|a| a[1] == 0xC0)
        .map(|a| a[4])
        .collect();
    assert_eq!(
        gets,
        vec![0xC8],
        "one GET RESPONSE asking for the 200 bytes announced"
    );
}

#[test]
fn six_c_repeats_with_the_right_le() {
    let fake = FakeCard {
        sent: Vec::new(),
        respond: |apdu: &[u8]| match apdu {
            [0x00, 0x70, ..] => ok(&[0x02]),
            [0x02, 0xA4, .., 0x00] if apdu.len() == 22 => vec![0x6C, 0x05],
            [0x02, 0xA4, .., 0x05] => ok(&[1, 2, 3, 4, 5]),
            _ => vec![0x6D, 0x00],
        },
    };
    let mut es10 = Es10::open(fake, &Es10Options::default()).unwrap();
    assert_eq!(es10.channel(), 2);
    assert_eq!(es10.transport_mut().sent.len(), 3);
}

#[test]
fn status_words_become_typed_errors() {
    let mut es10 = open(card(|_| vec![0x6A, 0x88]), DEFAULT_BLOCK_SIZE);
    let e = es10.transmit_es10(&tlv(0xBF2E, &[])).unwrap_err();
    assert!(matches!(
        e,
        Es10Error::Status {
            command: "STORE DATA",
            sw: StatusWord(0x6A88)
        }
    ));
    assert!(e.to_string().contains("6A88"));

    let mut es10 = open(card(|_| vec![0x90]), DEFAULT_BLOCK_SIZE);
    assert!(matches!(
        es10.transmit_es10(&tlv(0xBF2E, &[])),
        Err(Es10Error::Transport(TransportError::ResponseTooShort(1)))
    ));
}

#[test]
fn missing_isd_r_and_channels() {
    let fake = FakeCard {
        sent: Vec::new(),
        respond: |apdu: &[u8]| match apdu {
            [0x00, 0x70, 0x00, ..] => ok(&[0x01]),
            [0x01, 0xA4, ..] => vec![0x6A, 0x82],
            _ => ok(&[]),
        },
    };
    let e = Es10::open(fake, &Es10Options::default()).unwrap_err();
    assert!(matches!(e, Es10Error::IsdRNotFound(StatusWord(0x6A82))));

    for answer in [
        vec![0x6A, 0x81],
        ok(&[]),
        ok(&[0x00]),
        ok(&[20]),
        ok(&[1, 2]),
    ] {
        let fake = FakeCard {
            sent: Vec::new(),
            respond: move |_: &[u8]| answer.clone(),
        };
        assert!(matches!(
            Es10::open(fake, &Es10Options::default()),
            Err(Es10Error::NoChannel(_))
        ));
    }
}

#[test]
fn class_bytes() {
    assert_eq!(class_byte(0x80, 0), 0x80);
    assert_eq!(class_byte(0x80, 3), 0x83);
    assert_eq!(class_byte(0x00, 2), 0x02);
    assert_eq!(class_byte(0x80, 4), 0xC0);
    assert_eq!(class_byte(0x00, 4), 0x40);
    assert_eq!(class_byte(0x80, 19), 0xCF);
    assert_eq!(class_byte(0x00, 19), 0x4F);
}

#[test]
fn typed_functions_decode_and_report_refusals() {
    let iccid = ferrosim_saip::Iccid::from_body("8904903200000000001").unwrap();
    let mut es10 = open(
        card(|cmd| match cmd {
            [0xBF, 0x2E, ..] => ok(&tlv(0xBF2E, &tlv(0x80, &[7; 16]))),
            [0xBF, 0x31, ..] => ok(&tlv(0xBF31, &tlv(0x80, &[2]))),
            [0xBF, 0x32, ..] => ok(&tlv(0xBF32, &tlv(0x80, &[0]))),
            [0xBF, 0x2B, ..] => ok(&tlv(0xBF2B, &tlv(0x81, &[1]))),
            [0xBF, 0x28, ..] => {
                let meta = [
                    tlv(0x80, &[3]),
                    tlv(0x81, &[0x06, 0x40]),
                    tlv(0x0C, b"smdp.example.com"),
                    tlv(0x5A, &[0x98, 0x40]),
                ]
                .concat();
                ok(&tlv(0xBF28, &tlv(0xA0, &tlv(0xBF2F, &meta))))
            }
            [0xBF, 0x2D, ..] => {
                let profile = [
                    tlv(0x5A, &[0x98, 0x40, 0xF1]),
                    tlv(0x9F70, &[1]),
                    tlv(0x92, b"Test"),
                ]
                .concat();
                ok(&tlv(0xBF2D, &tlv(0xA0, &tlv(0xE3, &profile))))
            }
            [0xBF, 0x41, ..] => ok(&tlv(0xBF41, &tlv(0x81, &[5]))),
            _ => ok(&tlv(0xBF00, &[])),
        }),
        DEFAULT_BLOCK_SIZE,
    );
    assert_eq!(es10.get_euicc_challenge().unwrap(), [7; 16]);
    let e = es10
        .enable_profile(&ProfileId::Iccid(iccid.clone()), true)
        .unwrap_err();
    assert!(matches!(
        e,
        Es10Error::Refused {
            function: "EnableProfile",
            code: 2
        }
    ));
    assert!(e.to_string().contains("profileNotInDisabledState"));
    es10.disable_profile(&ProfileId::Iccid(iccid), false)
        .unwrap();
    assert!(es10.retrieve_notifications(Some(3)).unwrap().is_empty());
    let listed = es10.list_notifications().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].seq_number, 3);
    assert_eq!(listed[0].operation, Some(NotificationOperation::Enable));
    assert_eq!(listed[0].iccid.as_deref(), Some("8904"));
    let profiles = es10.get_profiles_info(None).unwrap();
    assert_eq!(profiles[0].iccid.as_deref(), Some("89041"));
    assert_eq!(profiles[0].state, Some(ProfileState::Enabled));
    assert_eq!(profiles[0].profile_name.as_deref(), Some("Test"));
    let tid = ferrosim_ids::TransactionId::from_bytes(&[1, 2]).unwrap();
    let e = es10
        .cancel_session(&tid, types::CancelSessionReason::Timeout)
        .unwrap_err();
    assert!(e.to_string().contains("invalidTransactionId"));
    assert!(matches!(es10.get_eid(), Err(Es10Error::BadResponse { .. })));
}

mod robustness {
    //! Whatever the card answers, the driver returns a value or an error, never panics.

    use proptest::prelude::*;

    use super::*;
    use crate::download::ProfileMetadata;
    use crate::es10::types::{EuiccInfo1, EuiccInfo2, InstallationResult};

    /// Tags the decoders look for, so random TLVs reach the inner code paths.
    const TAGS: [u32; 24] = [
        0x80, 0x81, 0x82, 0x83, 0x84, 0x04, 0x0C, 0x5A, 0x4F, 0x90, 0x91, 0x92, 0x95, 0x99, 0x9F70,
        0xA0, 0xA1, 0xA2, 0xA9, 0xAA, 0xBF27, 0xBF2F, 0xE3, 0x30,
    ];

    /// Random TLV soup, nested up to three levels, built from [`TAGS`].
    fn tlvs() -> impl Strategy<Value = Vec<u8>> {
        let leaf = (
            prop::sample::select(TAGS.to_vec()),
            prop::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(tag, value)| tlv(tag, &value));
        leaf.prop_recursive(3, 48, 6, |inner| {
            (
                prop::sample::select(TAGS.to_vec()),
                prop::collection::vec(inner, 0..6),
            )
                .prop_map(|(tag, children)| tlv(tag, &children.concat()))
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            prop::collection::vec(tlvs(), 0..6).prop_map(|v| v.concat()),
        ]
    }

    proptest! {
        #[test]
        fn decoders_never_panic(inner in body()) {
            for tag in [0xBF20u32, 0xBF22, 0xBF37, 0xBF25, 0xBF36] {
                let wrapped = tlv(tag, &inner);
                for bytes in [&inner, &wrapped] {
                    let _ = EuiccInfo1::decode(bytes.clone());
                    let _ = EuiccInfo2::decode(bytes.clone());
                    let _ = InstallationResult::decode(bytes.clone());
                    let _ = ProfileMetadata::decode(bytes.clone());
                    let _ = bpp::segments(bytes);
                }
            }
        }

        #[test]
        fn typed_functions_survive_any_answer(inner in body(), raw in any::<bool>(), sw in any::<u16>()) {
            let answer = move |cmd: &[u8]| {
                let tag = Tlv::parse(cmd).map(|(t, _)| t.tag).unwrap_or(0);
                let data = if raw { inner.clone() } else { tlv(tag, &inner) };
                let sw = if sw % 4 == 0 { sw } else { 0x9000 };
                [data, sw.to_be_bytes().to_vec()].concat()
            };
            let mut es10 = open(card(answer), DEFAULT_BLOCK_SIZE);
            let iccid = ferrosim_saip::Iccid::from_body("8904903200000000001").unwrap();
            let id = ProfileId::Iccid(iccid.clone());
            let _ = es10.get_euicc_challenge();
            let _ = es10.get_euicc_info1();
            let _ = es10.get_euicc_info2();
            let _ = es10.get_eid();
            let _ = es10.list_notifications();
            let _ = es10.retrieve_notifications(None);
            let _ = es10.retrieve_notifications(Some(1));
            let _ = es10.remove_notification(1);
            let _ = es10.get_profiles_info(None);
            let _ = es10.enable_profile(&id, false);
            let _ = es10.disable_profile(&id, false);
            let _ = es10.delete_profile(&id);
            let _ = es10.set_nickname(&iccid, "n");
            let _ = es10.configured_addresses();
            let _ = es10.set_default_dp_address("a.example");
            let _ = es10.memory_reset(types::MemoryResetOptions::default());
            if let Ok(tid) = ferrosim_ids::TransactionId::from_bytes(&[1]) {
                let _ = es10.cancel_session(&tid, types::CancelSessionReason::Timeout);
            }
            let _ = es10.get_rat();
        }

        #[test]
        fn truncated_answers_are_errors(cut in 0usize..200) {
            let mut meta = tlv(0x80, &[7]);
            meta.extend(tlv(0x81, &[0x07, 0x80]));
            meta.extend(tlv(0x0C, b"smdp.example.com"));
            let mut data = tlv(0x80, &[1, 2, 3]);
            data.extend(tlv(0xBF2F, &meta));
            data.extend(tlv(0x06, &[0x88, 0x37, 0x0A]));
            data.extend(tlv(0xA2, &tlv(0xA0, &[tlv(0x4F, &[1; 16]), tlv(0x04, &[])].concat())));
            let pir = tlv(0xBF37, &[tlv(0xBF27, &data), tlv(0x5F37, &[0; 64])].concat());
            prop_assert!(InstallationResult::decode(pir.clone()).is_ok());
            let cut = cut % pir.len();
            prop_assert!(InstallationResult::decode(pir[..cut].to_vec()).is_err());
        }
    }
}

#[test]
fn installation_result_transaction_id_must_be_1_to_16_bytes() {
    let pir = |tid: &[u8]| {
        let mut meta = tlv(0x80, &[7]);
        meta.extend(tlv(0x81, &[0x07, 0x80]));
        meta.extend(tlv(0x0C, b"smdp.example.com"));
        let mut data = tlv(0x80, tid);
        data.extend(tlv(0xBF2F, &meta));
        data.extend(tlv(0xA2, &tlv(0xA0, &tlv(0x4F, &[1; 16]))));
        tlv(
            0xBF37,
            &[tlv(0xBF27, &data), tlv(0x5F37, &[0; 64])].concat(),
        )
    };
    let ok = InstallationResult::decode(pir(&[1, 2, 3])).unwrap();
    assert_eq!(ok.transaction_id.as_bytes(), [1, 2, 3]);
    for bad in [&[][..], &[0; 17][..]] {
        let e = InstallationResult::decode(pir(bad)).unwrap_err();
        assert!(e.to_string().contains("transactionId"), "{e}");
    }
}
