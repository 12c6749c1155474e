//! Properties of every identifier: garbage (text, bytes, JSON) never panics
//! and gets an error; valid values survive text, byte-coding and serde
//! round trips unchanged.

use ferrosim_ids::*;
use proptest::prelude::*;

/// An ICCID body of 18 or 19 digits.
fn iccid_body() -> impl Strategy<Value = String> {
    "[0-9]{18,19}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_garbage_never_panics(s in "\\PC{0,80}") {
        let _ = Eid::parse(&s);
        let _ = EidPrefix::parse(&s);
        let _ = Iccid::new(&s);
        let _ = Iccid::from_body(&s);
        let _ = s.parse::<Imsi>();
        let _ = MatchingId::new(&s);
        let _ = TransactionId::from_hex(&s);
        let _ = OperatorId::new(&s);
        let _ = CiKeyId::from_hex(&s);
        let _ = s.parse::<Timestamp>();
        let _ = luhn_digit(&s);
        let _ = bcd::swapped_bytes(&s);
        let _ = bcd::in_order_bytes(&s);
        let json = serde_json::to_string(&s).unwrap();
        let _ = serde_json::from_str::<Eid>(&json);
        let _ = serde_json::from_str::<Iccid>(&json);
        let _ = serde_json::from_str::<Imsi>(&json);
        let _ = serde_json::from_str::<MatchingId>(&json);
        let _ = serde_json::from_str::<TransactionId>(&json);
        let _ = serde_json::from_str::<CiKeyId>(&json);
    }

    #[test]
    fn byte_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = Eid::from_bcd(&b);
        let _ = Iccid::from_bcd(&b);
        let _ = Iccid::from_header_bcd(&b);
        let _ = bcd::swapped_digits(&b);
        let _ = bcd::in_order_digits(&b);
        let _ = Imsi::from_ef_imsi(&b);
        let _ = TransactionId::from_bytes(&b);
        let _ = CiKeyId::from_bytes(&b);
    }

    #[test]
    fn digit_strings_of_any_length_give_errors_not_panics(s in "[0-9Ff]{0,40}") {
        if let Ok(iccid) = Iccid::new(&s) {
            prop_assert!(matches!(iccid.as_str().len(), 19 | 20));
        }
        if let Ok(eid) = Eid::parse(&s) {
            prop_assert_eq!(eid.to_string(), s);
        }
    }

    #[test]
    fn eids_round_trip(body in "[0-9]{30}") {
        let eid = Eid::from_body(&body).unwrap();
        prop_assert_eq!(eid.to_string().parse::<Eid>().unwrap(), eid);
        prop_assert_eq!(Eid::from_bcd(&eid.to_bcd()).unwrap(), eid);
        let json = serde_json::to_string(&eid).unwrap();
        prop_assert_eq!(serde_json::from_str::<Eid>(&json).unwrap(), eid);
    }

    #[test]
    fn iccids_round_trip(body in iccid_body()) {
        let iccid = Iccid::from_body(&body).unwrap();
        prop_assert!(iccid.as_str().starts_with(&body));
        prop_assert_eq!(iccid.to_string().parse::<Iccid>().unwrap(), iccid.clone());
        prop_assert_eq!(Iccid::from_bcd(&iccid.to_bcd()).unwrap(), iccid.clone());
        prop_assert_eq!(Iccid::from_header_bcd(&iccid.to_header_bcd()).unwrap(), iccid.clone());
        let json = serde_json::to_string(&iccid).unwrap();
        prop_assert_eq!(serde_json::from_str::<Iccid>(&json).unwrap(), iccid.clone());
        if iccid.as_str().len() == 19 {
            prop_assert_eq!(Iccid::new(&format!("{iccid}F")).unwrap(), iccid);
        }
    }

    #[test]
    fn iccid_digit_changes_are_detected(body in iccid_body(), pos in 0usize..19, delta in 1u8..10) {
        let good = Iccid::from_body(&body).unwrap().to_string().into_bytes();
        let mut bad = good.clone();
        bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
        let bad = String::from_utf8(bad).unwrap();
        prop_assert!(
            matches!(Iccid::new(&bad), Err(IdError::IccidCheckDigit { .. })),
            "{} accepted", bad
        );
    }

    #[test]
    fn imsis_round_trip(mcc in "[0-9]{3}", mnc_len in 2usize..=3, msin in "[0-9]{1,9}") {
        let mnc = &"0123"[..mnc_len];
        let digits = format!("{mcc}{mnc}{msin}");
        let imsi = Imsi::with_mnc_len(&digits, mnc_len).unwrap();
        prop_assert_eq!(imsi.to_text().parse::<Imsi>().unwrap(), imsi.clone());
        let json = serde_json::to_string(&imsi).unwrap();
        prop_assert_eq!(serde_json::from_str::<Imsi>(&json).unwrap(), imsi.clone());
        let plain = Imsi::new(&digits).unwrap();
        prop_assert_eq!(Imsi::from_ef_imsi(&plain.to_ef_imsi()).unwrap(), plain.clone());
        prop_assert_eq!(plain.to_string().parse::<Imsi>().unwrap(), plain);
    }

    #[test]
    fn protocol_ids_round_trip(
        m in "[A-Za-z0-9-]{1,64}",
        tid in proptest::collection::vec(any::<u8>(), 1..=16),
        op in "[!-~]{1,64}",
        key in proptest::collection::vec(any::<u8>(), 1..=64),
    ) {
        let m = MatchingId::new(&m).unwrap();
        prop_assert_eq!(m.to_string().parse::<MatchingId>().unwrap(), m.clone());
        prop_assert_eq!(serde_json::from_str::<MatchingId>(&serde_json::to_string(&m).unwrap()).unwrap(), m);

        let t = TransactionId::from_bytes(&tid).unwrap();
        prop_assert_eq!(t.as_bytes(), &tid[..]);
        prop_assert_eq!(TransactionId::from_hex(&t.to_hex()).unwrap(), t.clone());
        prop_assert_eq!(serde_json::from_str::<TransactionId>(&serde_json::to_string(&t).unwrap()).unwrap(), t);

        let o = OperatorId::new(&op).unwrap();
        prop_assert_eq!(o.as_str(), &op[..]);
        prop_assert_eq!(serde_json::from_str::<OperatorId>(&serde_json::to_string(&o).unwrap()).unwrap(), o);

        let k = CiKeyId::from_bytes(&key).unwrap();
        prop_assert_eq!(k.as_bytes(), &key[..]);
        prop_assert_eq!(k.to_string().parse::<CiKeyId>().unwrap(), k.clone());
        prop_assert_eq!(serde_json::from_str::<CiKeyId>(&serde_json::to_string(&k).unwrap()).unwrap(), k);
    }

    #[test]
    fn timestamps_round_trip(ms in -62_135_596_800_000i64..253_402_300_799_999) {
        let t = Timestamp(ms);
        prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        prop_assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        prop_assert_eq!(serde_json::from_str::<Timestamp>(&serde_json::to_string(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn orders_agree_with_their_text(a in "[0-9]{18,19}", b in "[0-9]{18,19}") {
        let (x, y) = (Iccid::from_body(&a).unwrap(), Iccid::from_body(&b).unwrap());
        prop_assert_eq!(x.cmp(&y), x.as_str().cmp(y.as_str()));
    }
}
