//! Parsing and inspection of real packages: the three GSMA TS.48 test
//! profiles and the UPP of the BSP test vectors.

mod common;

use std::collections::HashSet;

use ferrosim_saip::{
    AkaAlgorithm, AkaParameters, ElementKind, Iccid, KEY_REF_ADM1, KEY_REF_PIN1, KEY_REF_PIN2,
    KnownService, ProfileClass, ProfilePackage, Service,
};

#[test]
fn packages_split_into_elements() {
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let elements: Vec<_> = package.elements().collect();
        assert_eq!(
            elements.first().map(|e| e.kind),
            Some(ElementKind::Header),
            "{}",
            f.name
        );
        assert_eq!(
            elements.last().map(|e| e.kind),
            Some(ElementKind::End),
            "{}",
            f.name
        );
        // The elements tile the package exactly.
        let joined: Vec<u8> = elements
            .iter()
            .flat_map(|e| e.raw.iter().copied())
            .collect();
        assert_eq!(joined, f.bytes, "{}", f.name);
        for e in &elements {
            assert_eq!(&f.bytes[e.offset..e.offset + e.raw.len()], e.raw);
        }
        let kinds: HashSet<_> = elements.iter().map(|e| e.kind).collect();
        for expected in [
            ElementKind::Mf,
            ElementKind::Telecom,
            ElementKind::Usim,
            ElementKind::OptUsim,
            ElementKind::Isim,
            ElementKind::OptIsim,
            ElementKind::Csim,
            ElementKind::OptCsim,
            ElementKind::GsmAccess,
            ElementKind::CdmaParameter,
            ElementKind::AkaParameter,
            ElementKind::PinCodes,
            ElementKind::PukCodes,
            ElementKind::GenericFileManagement,
            ElementKind::SecurityDomain,
            ElementKind::Rfm,
        ] {
            assert!(kinds.contains(&expected), "{}: no {expected}", f.name);
        }
        // Every element but the header carries a distinct PE identification.
        let ids: Vec<_> = elements.iter().skip(1).map(|e| e.identification).collect();
        assert!(ids.iter().all(Option::is_some), "{}", f.name);
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{}",
            f.name
        );
        assert_eq!(
            package.elements_of(ElementKind::AkaParameter).count(),
            2,
            "{}",
            f.name
        );
        println!(
            "{}: {} elements: {}",
            f.name,
            package.len(),
            elements
                .iter()
                .map(|e| e.kind.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

#[test]
fn headers_decode() {
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap();
        let h = package.header();
        assert_eq!(h.major_version, 2, "{}", f.name);
        assert!(matches!(h.minor_version, 1 | 3), "{}", f.name);
        assert_eq!(
            h.profile_type.as_deref(),
            Some("GSMA Generic eUICC Test Profile")
        );
        assert_eq!(h.iccid_digits, f.iccid);
        let iccid = h.iccid().unwrap();
        assert!(iccid.as_str().starts_with("89"));
        for s in [
            KnownService::Usim,
            KnownService::Isim,
            KnownService::Csim,
            KnownService::UsimTestAlgorithm,
        ] {
            assert!(
                h.mandatory_services.contains(&Service::Known(s)),
                "{}: {s:?}",
                f.name
            );
        }
        assert_eq!(
            h.mandatory_gfste.first().map(String::as_str),
            Some("2.23.143.1.2.1")
        );
        assert!(
            h.mandatory_gfste
                .iter()
                .all(|oid| oid.starts_with("2.23.143.1.2."))
        );
        println!(
            "{}: SAIP {}.{} services [{}] templates [{}]",
            f.name,
            h.major_version,
            h.minor_version,
            h.mandatory_services
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            h.mandatory_gfste.join(", ")
        );
    }
}

#[test]
fn summaries_show_the_provisioned_values() {
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap();
        let s = package.summary().unwrap();
        println!("{}: {s:#?}", f.name);
        assert_eq!(s.iccid, f.iccid);
        assert_eq!(s.ef_iccid.as_deref(), Some(f.iccid), "{}: EF.ICCID", f.name);
        assert!(Iccid::new(&s.iccid).is_ok(), "{}: ICCID Luhn", f.name);
        let imsi = s.imsi.as_ref().expect("IMSI");
        assert_eq!(imsi.as_str(), "001010123456063");
        assert_eq!(imsi.mcc(), "001");
        assert_eq!(imsi.mnc(), Some("01"), "{}: MNC length from EF.AD", f.name);
        assert_eq!(s.algorithm(), Some(AkaAlgorithm::UsimTestAlgorithm));
        assert_eq!(s.k(), Some(&(0u8..16).collect::<Vec<_>>()[..]));
        assert_eq!(s.opc(), Some(&[0u8; 16][..]));
        assert!(
            s.aka
                .iter()
                .all(|a| matches!(a, AkaParameters::Algorithm { options: 2, .. }))
        );
        let pin1 = s.pin(KEY_REF_PIN1).expect("PIN1");
        assert_eq!(pin1.digits().as_deref(), Some("0000"));
        assert_eq!(pin1.context, Some(ElementKind::Mf));
        assert_eq!(pin1.unblocking_reference, Some(1));
        assert_eq!(
            s.pin(KEY_REF_ADM1).and_then(|p| p.digits()).as_deref(),
            Some("55555555")
        );
        assert_eq!(
            s.pin(0x0B).and_then(|p| p.digits()).as_deref(),
            Some("66666666")
        );
        let pin2s: Vec<_> = s
            .pins
            .iter()
            .filter(|p| p.key_reference == KEY_REF_PIN2)
            .collect();
        assert!(
            pin2s.len() >= 3,
            "{}: PIN2 in telecom, USIM, ISIM, CSIM",
            f.name
        );
        assert!(pin2s.iter().all(|p| p.digits().as_deref() == Some("9999")));
        assert!(pin2s.iter().any(|p| p.context == Some(ElementKind::Usim)));
        assert_eq!(
            s.puk(1).and_then(|p| p.digits()).as_deref(),
            Some("11111111")
        );
        assert_eq!(
            s.puk(0x81).and_then(|p| p.digits()).as_deref(),
            Some("22222222")
        );
        assert_eq!(
            s.puk(1).map(|p| (p.max_attempts, p.retries_left)),
            Some((10, 10))
        );
        assert_eq!(s.spn.as_deref(), Some("GSMA_TEST"));
        assert!(
            s.apns.is_empty(),
            "{}: the TS.48 profiles set no APN",
            f.name
        );
        // Debug output must not leak secrets.
        let debug = format!("{s:?}");
        assert!(!debug.contains("55555555") && !debug.contains("000102030405"));
    }
}

#[test]
fn metadata_defaults_come_from_the_header() {
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap();
        let m = package.metadata_defaults().unwrap();
        assert_eq!(m.iccid.as_str(), f.iccid);
        assert_eq!(m.profile_name, "GSMA Generic eUICC Test Profile");
        assert_eq!(m.profile_class, ProfileClass::Operational);
        assert_eq!(m.profile_class.code(), 2);
        assert_eq!(m.spn_hint.as_deref(), Some("GSMA_TEST"));
    }
}

#[test]
fn generated_types_agree_with_the_tlv_view() {
    use ferrosim_asn1::pe;
    for f in common::fixtures() {
        let package = ProfilePackage::parse(&f.bytes).unwrap();
        package
            .validate_schema()
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let decoded = package.decode_elements().unwrap();
        assert_eq!(decoded.len(), package.len());
        let pe::ProfileElement::header(h) = &decoded[0] else {
            panic!("{}: first element is not the header", f.name)
        };
        assert_eq!(
            &h.iccid[..],
            &Iccid::new(f.iccid).unwrap().to_header_bcd()[..]
        );
        assert_eq!(
            h.profile_type.as_deref(),
            package.header().profile_type.as_deref()
        );
        // The typed values re-encode to the same bytes for these packages;
        // personalisation still patches the original bytes, never re-encodes.
        for (typed, element) in decoded.iter().zip(package.elements()) {
            assert_eq!(
                ferrosim_asn1::encode_der(typed).unwrap(),
                element.raw,
                "{}: {}",
                f.name,
                element.kind
            );
        }
    }
}

#[test]
fn schema_errors_name_the_element() {
    let f = &common::fixtures()[0];
    let package = ProfilePackage::parse(&f.bytes).unwrap();
    // Drop the templateID of the MF element: still TLV-valid, no longer PE-MF.
    let mf = package.elements_of(ElementKind::Mf).next().unwrap();
    let oid = [0x81, 0x06, 0x67, 0x81, 0x0F, 0x01, 0x02, 0x01];
    let pos = mf.raw.windows(oid.len()).position(|w| w == oid).unwrap();
    // The MF element header is `B0 82 xx xx` (759 bytes of value).
    let mut body = mf.raw[4..].to_vec();
    body.drain(pos - 4..pos - 4 + oid.len());
    let mut bytes = f.bytes[..mf.offset].to_vec();
    bytes.extend(ferrosim_asn1::tlv::tlv(0xB0, &body));
    bytes.extend(&f.bytes[mf.offset + mf.raw.len()..]);
    let broken = ProfilePackage::parse(&bytes).unwrap();
    assert!(matches!(
        broken.validate_schema(),
        Err(ferrosim_saip::Error::Schema {
            index: 1,
            kind: ElementKind::Mf,
            ..
        })
    ));
}
