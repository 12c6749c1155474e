//! The card at the APDU level: framing errors, logical channels, SELECT,
//! STORE DATA block rules, GET RESPONSE chaining, and random bytes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::SystemTime;

use common::{card, cla, es10, es10_sw, open_isdr, split, transmit};
use ferrosim_euicc::{ATR, ISD_R_AID, VirtualEuicc};
use proptest::prelude::*;

fn sw(card: &mut VirtualEuicc, apdu: &[u8]) -> u16 {
    split(&card.handle_apdu(apdu, SystemTime::now())).1
}

fn select_isdr(channel: u8) -> Vec<u8> {
    let mut apdu = vec![cla(channel, false), 0xA4, 0x04, 0x00, 0x10];
    apdu.extend_from_slice(&ISD_R_AID);
    apdu.push(0x00);
    apdu
}

#[test]
fn atr_announces_t0_only() {
    let card = card();
    assert_eq!(card.atr(), &ATR);
    assert_eq!(ATR[1..].iter().fold(0, |acc, b| acc ^ b), 0, "TCK");
    // TD1 = 80 (T=0), TD2 = 1F (T=15: global interface bytes), no T=1.
    assert_eq!(&ATR[..5], &[0x3B, 0x87, 0x80, 0x1F, 0xC7]);
}

/// What T=0 host software (pySim-like shells, modem firmware) expects: a
/// command without Le that has data to return answers `61xx`, the data
/// comes with GET RESPONSE (class `00` or `80`), a command with Le gets its
/// data at once, and TERMINAL CAPABILITY is accepted.
#[test]
fn behaves_as_a_t0_card() {
    let mut c = card();
    // TERMINAL CAPABILITY first, as IoT device software sends it.
    assert_eq!(
        sw(
            &mut c,
            &[0x80, 0xAA, 0x00, 0x00, 0x05, 0xA9, 0x03, 0x83, 0x01, 0x07]
        ),
        0x9000
    );
    assert_eq!(
        sw(&mut c, &[0x80, 0xAA, 0x00, 0x00, 0x02, 0xA9, 0x00]),
        0x9000
    );
    assert_eq!(
        sw(&mut c, &[0x80, 0xAA, 0x00, 0x00, 0x02, 0xA8, 0x00]),
        0x6A80
    );
    assert_eq!(
        sw(&mut c, &[0x80, 0xAA, 0x00, 0x00, 0x03, 0xA9, 0x05, 0x00]),
        0x6A80
    );
    assert_eq!(sw(&mut c, &[0x80, 0xAA, 0x00, 0x00]), 0x6700);
    assert_eq!(
        sw(&mut c, &[0x80, 0xAA, 0x01, 0x00, 0x02, 0xA9, 0x00]),
        0x6A86
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0xAA, 0x00, 0x00, 0x02, 0xA9, 0x00]),
        0x6D00
    );

    // MANAGE CHANNEL open without Le: 6101, the number by GET RESPONSE.
    let r = c.handle_apdu(&[0x00, 0x70, 0x00, 0x00], SystemTime::now());
    assert_eq!(r, [0x61, 0x01]);
    let r = c.handle_apdu(&[0x00, 0xC0, 0x00, 0x00, 0x01], SystemTime::now());
    assert_eq!(r, [0x01, 0x90, 0x00]);
    let ch = 1;

    // SELECT ISD-R without Le: 61xx, then the FCI.
    let mut select = vec![cla(ch, false), 0xA4, 0x04, 0x00, 0x10];
    select.extend_from_slice(&ISD_R_AID);
    let r = c.handle_apdu(&select, SystemTime::now());
    assert_eq!((r.len(), r[0]), (2, 0x61), "{r:02X?}");
    let fci_len = r[1];
    let r = c.handle_apdu(
        &[cla(ch, false), 0xC0, 0x00, 0x00, fci_len],
        SystemTime::now(),
    );
    let (fci, s) = split(&r);
    assert_eq!((fci.len(), s), (usize::from(fci_len), 0x9000));
    assert_eq!(fci[0], 0x6F);

    // GetEID (BF3E 03 5C 01 5A) without Le: 61xx; GET RESPONSE with class 80.
    let get_eid = [
        cla(ch, true),
        0xE2,
        0x91,
        0x00,
        0x06,
        0xBF,
        0x3E,
        0x03,
        0x5C,
        0x01,
        0x5A,
    ];
    let r = c.handle_apdu(&get_eid, SystemTime::now());
    assert_eq!((r.len(), r[0]), (2, 0x61), "{r:02X?}");
    let len = r[1];
    let r = c.handle_apdu(&[cla(ch, true), 0xC0, 0x00, 0x00, len], SystemTime::now());
    let (eid_answer, s) = split(&r);
    assert_eq!(s, 0x9000);
    assert_eq!(&eid_answer[..2], &[0xBF, 0x3E]);
    // In smaller pieces: Le shorter than what is left announces the rest.
    c.handle_apdu(&get_eid, SystemTime::now());
    let r = c.handle_apdu(&[cla(ch, true), 0xC0, 0x00, 0x00, 4], SystemTime::now());
    let (first, s) = split(&r);
    assert_eq!(first, eid_answer[..4]);
    assert_eq!(s, 0x6100 | u16::from(len - 4));
    // The same command with Le: the data at once (as over T=1).
    let mut with_le = get_eid.to_vec();
    with_le.push(0x00);
    let (data, s) = split(&c.handle_apdu(&with_le, SystemTime::now()));
    assert_eq!((data, s), (eid_answer, 0x9000));
    // A STORE DATA that returns nothing stays 9000 (a first block).
    assert_eq!(
        sw(&mut c, &[cla(ch, true), 0xE2, 0x11, 0x00, 0x02, 0xBF, 0x2D]),
        0x9000
    );
}

#[test]
fn garbage_gets_iso_status_words() {
    let mut c = card();
    assert_eq!(sw(&mut c, &[]), 0x6700);
    assert_eq!(sw(&mut c, &[0x00, 0xA4]), 0x6700);
    assert_eq!(sw(&mut c, &[0x00, 0xA4, 0x04, 0x00, 0x05, 0x01]), 0x6700);
    assert_eq!(sw(&mut c, &[0xFF, 0xA4, 0x04, 0x00]), 0x6E00);
    assert_eq!(sw(&mut c, &[0xA0, 0xA4, 0x04, 0x00]), 0x6E00);
    assert_eq!(sw(&mut c, &[0x00, 0xCA, 0x00, 0x00, 0x00]), 0x6D00);
    assert_eq!(
        sw(&mut c, &[0x80, 0xF2, 0x40, 0x00, 0x00]),
        0x6D00,
        "GET STATUS"
    );
    assert_eq!(
        sw(&mut c, &[0x0C, 0xA4, 0x04, 0x00, 0x01, 0x00]),
        0x6882,
        "secure messaging"
    );
    assert_eq!(
        sw(&mut c, &[0x10, 0xA4, 0x04, 0x00, 0x01, 0x00]),
        0x6884,
        "chaining"
    );
    assert_eq!(
        sw(&mut c, &[0x01, 0xA4, 0x04, 0x00, 0x01, 0x00]),
        0x6881,
        "channel not open"
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0xA4, 0x07, 0x00, 0x01, 0x00]),
        0x6A86,
        "SELECT P1"
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0xA4, 0x04, 0x01, 0x05, 1, 2, 3, 4, 5]),
        0x6A86,
        "SELECT P2"
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0xA4, 0x00, 0x04, 0x02, 0x3F, 0x00]),
        0x6A82,
        "no file system"
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00]),
        0x6700,
        "AID too short"
    );
    assert_eq!(
        sw(
            &mut c,
            &[
                0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 0, 0x87, 0x10, 0x02
            ]
        ),
        0x6A82,
        "USIM not here"
    );
}

#[test]
fn manage_channel_opens_and_closes() {
    let mut c = card();
    let (data, s) = transmit(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!((data, s), (vec![1], 0x9000));
    let (data, s) = transmit(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!((data, s), (vec![2], 0x9000));
    // Opening a given channel number (a further interindustry one).
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x00, 0x07]), 0x9000);
    assert_eq!(
        sw(&mut c, &[0x00, 0x70, 0x00, 0x07]),
        0x6A86,
        "already open"
    );
    assert_eq!(
        sw(&mut c, &[0x00, 0x70, 0x00, 0x14]),
        0x6A86,
        "no channel 20"
    );
    assert_eq!(
        sw(
            &mut c,
            &[cla(7, false), 0xA4, 0x04, 0x00, 0x10]
                .iter()
                .copied()
                .chain(ISD_R_AID)
                .collect::<Vec<_>>()
        ) >> 8,
        0x61,
        "SELECT without Le: the FCI is announced (T=0)"
    );
    // Close channel 2 from the basic channel, channel 7 from itself.
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x80, 0x02]), 0x9000);
    assert_eq!(
        sw(
            &mut c,
            &[0x02, 0xA4, 0x04, 0x00, 0x10]
                .iter()
                .copied()
                .chain(ISD_R_AID)
                .collect::<Vec<_>>()
        ),
        0x6881
    );
    assert_eq!(sw(&mut c, &[cla(7, false), 0x70, 0x80, 0x00]), 0x9000);
    assert_eq!(sw(&mut c, &[cla(7, false), 0x70, 0x80, 0x00]), 0x6881);
    assert_eq!(
        sw(&mut c, &[0x00, 0x70, 0x80, 0x00]),
        0x6A86,
        "the basic channel stays"
    );
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x80, 0x05]), 0x6881, "not open");
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x40, 0x00]), 0x6A86, "bad P1");
    // All channels in use.
    for _ in 0..18 {
        assert_eq!(
            split(&c.handle_apdu(&[0x00, 0x70, 0x00, 0x00, 0x01], SystemTime::now())).1,
            0x9000
        );
    }
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]), 0x6A81);
    // A reset closes everything but the basic channel.
    c.reset();
    assert_eq!(sw(&mut c, &[0x01, 0x70, 0x80, 0x00]), 0x6881);
    let (data, _) = transmit(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!(data, vec![1]);
}

#[test]
fn es10_only_where_the_isd_r_is_selected() {
    let mut c = card();
    let store_data = |channel: u8| {
        vec![
            cla(channel, true),
            0xE2,
            0x91,
            0x00,
            0x03,
            0xBF,
            0x2E,
            0x00,
            0x00,
        ]
    };
    assert_eq!(
        sw(&mut c, &store_data(0)),
        0x6985,
        "nothing selected on the basic channel"
    );
    let (data, s) = transmit(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!(s, 0x9000);
    let channel = data[0];
    assert_eq!(
        sw(&mut c, &store_data(channel)),
        0x6985,
        "channel open, ISD-R not selected"
    );
    // A partial AID (at least 5 bytes) selects it too, with its FCI.
    let mut select = vec![cla(channel, false), 0xA4, 0x04, 0x00, 0x0C];
    select.extend_from_slice(&ISD_R_AID[..12]);
    select.push(0x00);
    let (fci, s) = transmit(&mut c, &select);
    assert_eq!(s, 0x9000);
    assert_eq!(fci[0], 0x6F);
    assert!(fci.windows(16).any(|w| w == ISD_R_AID));
    let (data, s) = transmit(&mut c, &store_data(channel));
    assert_eq!(s, 0x9000);
    assert_eq!(&data[..3], &[0xBF, 0x2E, 0x12]);
    // STORE DATA needs the proprietary class.
    assert_eq!(
        sw(
            &mut c,
            &[
                cla(channel, false),
                0xE2,
                0x91,
                0x00,
                0x03,
                0xBF,
                0x2E,
                0x00
            ]
        ),
        0x6E00
    );
    // The ISD-R can also be selected on the basic channel (P2 0C: no FCI).
    let mut select = vec![0x00, 0xA4, 0x04, 0x0C, 0x10];
    select.extend_from_slice(&ISD_R_AID);
    assert_eq!(
        split(&c.handle_apdu(&select, SystemTime::now())),
        (vec![], 0x9000)
    );
    assert_eq!(sw(&mut c, &store_data(0)), 0x9000);
    // A closed channel forgets its selection.
    assert_eq!(sw(&mut c, &[0x00, 0x70, 0x80, channel]), 0x9000);
    let (data, _) = transmit(&mut c, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!(data[0], channel);
    assert_eq!(sw(&mut c, &store_data(channel)), 0x6985);
    // Reset deselects.
    c.reset();
    assert_eq!(sw(&mut c, &store_data(0)), 0x6985);
    assert_eq!(transmit(&mut c, &select_isdr(0)).1, 0x9000);
}

#[test]
fn store_data_blocks_must_follow_in_sequence() {
    let mut c = card();
    let ch = open_isdr(&mut c);
    let p = cla(ch, true);
    // Block 1 without block 0.
    assert_eq!(
        sw(&mut c, &[p, 0xE2, 0x91, 0x01, 0x03, 0xBF, 0x2E, 0x00]),
        0x6A86
    );
    // Blocks 0, 2: refused and the command is dropped.
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x11, 0x00, 0x02, 0xBF, 0x2E]), 0x9000);
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x91, 0x02, 0x01, 0x00]), 0x6A86);
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x91, 0x01, 0x01, 0x00]), 0x6A86);
    // Blocks 0, 1 in order work.
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x11, 0x00, 0x02, 0xBF, 0x2E]), 0x9000);
    let (data, s) = transmit(&mut c, &[p, 0xE2, 0x91, 0x01, 0x01, 0x00, 0x00]);
    assert_eq!((data.len(), s), (21, 0x9000));
    // Restarting at block 0 drops a half-sent command.
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x11, 0x00, 0x02, 0xBF, 0x20]), 0x9000);
    let (data, s) = transmit(&mut c, &[p, 0xE2, 0x91, 0x00, 0x03, 0xBF, 0x2E, 0x00, 0x00]);
    assert_eq!((&data[..2], s), (&[0xBF, 0x2E][..], 0x9000));
    // Wrong P1 (encrypted, DGI format) and empty data.
    assert_eq!(
        sw(&mut c, &[p, 0xE2, 0xB1, 0x00, 0x03, 0xBF, 0x2E, 0x00]),
        0x6A86
    );
    assert_eq!(
        sw(&mut c, &[p, 0xE2, 0x89, 0x00, 0x03, 0xBF, 0x2E, 0x00]),
        0x6A86
    );
    assert_eq!(sw(&mut c, &[p, 0xE2, 0x91, 0x00]), 0x6700);
    // Malformed and unknown ES10 commands.
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x2E, 0x05, 0x00], 120).1,
        0x6A80
    );
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x2E, 0x01, 0x00], 120).1,
        0x6A80,
        "challenge request with content"
    );
    assert_eq!(es10_sw(&mut c, ch, &[0xBF, 0x7F, 0x00], 120).1, 0x6A88);
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x2D, 0x03, 0x01, 0x02, 0x03], 120).1,
        0x6A80
    );
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x2E, 0x00, 0x00], 120).1,
        0x6A80,
        "trailing byte"
    );
    // BPP pieces without a download session.
    assert_eq!(
        es10_sw(&mut c, ch, &[0xBF, 0x36, 0x03, 0xBF, 0x23, 0x00], 120).1,
        0x6985
    );
    assert_eq!(es10_sw(&mut c, ch, &[0xA3, 0x00], 120).1, 0x6985);
}

#[test]
fn long_answers_come_in_get_response_pieces() {
    let mut c = card();
    let ch = open_isdr(&mut c);
    // EUICCInfo2 is longer than a 64-byte Le.
    let full = es10(&mut c, ch, &[0xBF, 0x22, 0x00]);
    assert!(full.len() > 64);
    let p = cla(ch, true);
    let g = cla(ch, false);
    let first = c.handle_apdu(
        &[p, 0xE2, 0x91, 0x00, 0x03, 0xBF, 0x22, 0x00, 0x40],
        SystemTime::now(),
    );
    let (mut data, mut s) = split(&first);
    assert_eq!(data.len(), 64);
    while s >> 8 == 0x61 {
        // Pending responses belong to their channel.
        assert_eq!(sw(&mut c, &[0x00, 0xC0, 0x00, 0x00, 0x10]), 0x6985);
        let next = c.handle_apdu(&[g, 0xC0, 0x00, 0x00, 0x20], SystemTime::now());
        let (more, next_sw) = split(&next);
        assert!(more.len() <= 0x20);
        data.extend_from_slice(&more);
        s = next_sw;
    }
    assert_eq!(s, 0x9000);
    assert_eq!(data.len(), full.len());
    assert_eq!(&data[..4], &full[..4]);
    // Nothing left.
    assert_eq!(sw(&mut c, &[g, 0xC0, 0x00, 0x00, 0x00]), 0x6985);
    // Another command drops a pending response.
    let (_, s) = split(&c.handle_apdu(
        &[p, 0xE2, 0x91, 0x00, 0x03, 0xBF, 0x22, 0x00, 0x10],
        SystemTime::now(),
    ));
    assert_eq!(s >> 8, 0x61);
    assert_eq!(sw(&mut c, &select_isdr(ch)), 0x9000);
    assert_eq!(sw(&mut c, &[g, 0xC0, 0x00, 0x00, 0x00]), 0x6985);
    // Bad GET RESPONSE parameters.
    let (_, s) = split(&c.handle_apdu(
        &[p, 0xE2, 0x91, 0x00, 0x03, 0xBF, 0x22, 0x00, 0x10],
        SystemTime::now(),
    ));
    assert_eq!(s >> 8, 0x61);
    assert_eq!(sw(&mut c, &[g, 0xC0, 0x01, 0x00, 0x00]), 0x6A86);
    // Extended Le: everything at once.
    let extended = c.handle_apdu(
        &[
            p, 0xE2, 0x91, 0x00, 0x00, 0x00, 0x03, 0xBF, 0x22, 0x00, 0x00, 0x00,
        ],
        SystemTime::now(),
    );
    let (data, s) = split(&extended);
    assert_eq!((data.len(), s), (full.len(), 0x9000));
}

#[test]
fn answers_over_256_bytes_chain_with_61xx() {
    // AuthenticateServer answers with two certificates: well over 256 bytes.
    let mut c = card();
    let ch = open_isdr(&mut c);
    let server = common::FakeSmdp::new(common::pki());
    let challenge = common::challenge(&mut c, ch);
    let request = server.authenticate_server(&challenge);
    let blocks: Vec<&[u8]> = request.chunks(200).collect();
    let mut last = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let final_block = i + 1 == blocks.len();
        let mut apdu = vec![
            cla(ch, true),
            0xE2,
            if final_block { 0x91 } else { 0x11 },
            i as u8,
            b.len() as u8,
        ];
        apdu.extend_from_slice(b);
        apdu.push(0x00);
        last = c.handle_apdu(&apdu, SystemTime::now());
    }
    let (first, s) = split(&last);
    assert_eq!(first.len(), 256);
    assert_eq!(s, 0x6100, "more than 256 bytes left");
    let mut all = first;
    let mut s = s;
    while s >> 8 == 0x61 {
        let (more, next) = split(&c.handle_apdu(
            &[cla(ch, false), 0xC0, 0x00, 0x00, (s & 0xFF) as u8],
            SystemTime::now(),
        ));
        all.extend_from_slice(&more);
        s = next;
    }
    assert_eq!(s, 0x9000);
    let parts =
        ferrosim_asn1::signed::euicc_signed1(&all).expect("a whole AuthenticateServerResponse");
    assert!(!parts.signed.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_apdus_never_panic(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut c = card();
        for apdu in &apdus {
            let r = c.handle_apdu(apdu, SystemTime::now());
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn random_es10_commands_never_panic(body in proptest::collection::vec(any::<u8>(), 1..400), tag in prop_oneof![
        Just(vec![0xBFu8, 0x38]), Just(vec![0xBF, 0x21]), Just(vec![0xBF, 0x36]), Just(vec![0xBF, 0x2D]),
        Just(vec![0xBF, 0x31]), Just(vec![0xBF, 0x33]), Just(vec![0xBF, 0x2B]), Just(vec![0xBF, 0x41]),
        Just(vec![0xA0]), Just(vec![0x86]), Just(vec![0xBF, 0x34]), Just(vec![0xBF, 0x3E]),
    ]) {
        let mut c = card();
        let ch = open_isdr(&mut c);
        common::challenge(&mut c, ch);
        let mut command = tag.clone();
        ferrosim_asn1::tlv::write_length(&mut command, body.len());
        command.extend_from_slice(&body);
        let (_, s) = es10_sw(&mut c, ch, &command, 255);
        prop_assert!(s == 0x9000 || s >> 8 == 0x6A || s == 0x6985, "SW {s:04X}");
        // Truncated and raw variants too.
        let (_, s) = es10_sw(&mut c, ch, &command[..command.len() / 2 + 1], 255);
        prop_assert!(s >= 0x6000);
    }
}
