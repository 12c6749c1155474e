//! Helpers of the integration tests: a minimal APDU driver (the real LPA is
//! `ferrosim-lpa`), a test PKI with an eUICC identity, and an SM-DP+ stand-in
//! that signs with the test PKI's keys for the eUICC-only tests.

#![allow(dead_code)]

pub mod iot;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ferrosim_asn1::rasn::types::{FixedOctetString, OctetString};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{decode_der, encode_der, rsp, signed};
use ferrosim_crypto::ecdsa::wrap_5f37;
use ferrosim_crypto::key::{KeySource, SoftwareKey};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ids::Timestamp;
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, ProfilePackage};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata, store_metadata_der};

/// The SM-DP+ address of the test PKI.
pub const SMDP_ADDRESS: &str = ferrosim_pki::generate::DEFAULT_SMDP_ADDRESS;

/// A test PKI generated once per test binary (key generation is the slow part).
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        TestPki::generate(&TestPkiOptions {
            euicc_count: 2,
            ..TestPkiOptions::default()
        })
        .expect("test PKI")
    })
}

/// A second, unrelated hierarchy (another CI).
pub fn other_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(&TestPkiOptions::default()).expect("test PKI"))
}

/// The identity of the first eUICC of [`pki`].
pub fn identity() -> EuiccIdentity {
    let pki = pki();
    let euicc = &pki.euiccs[0];
    EuiccIdentity::from_parts(
        euicc.certificate.der(),
        Arc::new(euicc.signing_key().expect("eUICC key")),
        pki.eum.certificate.der(),
        vec![pki.ci.certificate.der().to_vec()],
    )
    .expect("identity")
}

/// A fresh card with an empty state.
pub fn card() -> VirtualEuicc {
    VirtualEuicc::new(identity(), EuiccState::default())
}

/// The repository's test data.
pub fn testdata(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The first TS.48 fixture package and its ICCID.
pub fn fixture() -> (Vec<u8>, &'static str) {
    (
        testdata("upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"),
        "8949449999999990049",
    )
}

/// Splits a response APDU into data and status word.
pub fn split(response: &[u8]) -> (Vec<u8>, u16) {
    assert!(
        response.len() >= 2,
        "response without status word: {response:02X?}"
    );
    let (data, sw) = response.split_at(response.len() - 2);
    (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
}

/// Sends one APDU and follows `61xx` with GET RESPONSE, collecting the data.
pub fn transmit(card: &mut VirtualEuicc, apdu: &[u8]) -> (Vec<u8>, u16) {
    let (mut data, mut sw) = split(&card.handle_apdu(apdu, Timestamp::now()));
    while sw >> 8 == 0x61 {
        let le = (sw & 0xFF) as u8;
        let get = [apdu[0], 0xC0, 0x00, 0x00, le];
        let (more, next) = split(&card.handle_apdu(&get, Timestamp::now()));
        data.extend_from_slice(&more);
        sw = next;
    }
    (data, sw)
}

/// Opens a logical channel and selects the ISD-R on it; returns the channel.
pub fn open_isdr(card: &mut VirtualEuicc) -> u8 {
    let (data, sw) = transmit(card, &[0x00, 0x70, 0x00, 0x00, 0x01]);
    assert_eq!(sw, 0x9000, "MANAGE CHANNEL");
    let channel = data[0];
    let mut select = vec![cla(channel, false), 0xA4, 0x04, 0x00, 0x10];
    select.extend_from_slice(&ferrosim_euicc::ISD_R_AID);
    select.push(0x00);
    let (_, sw) = transmit(card, &select);
    assert_eq!(sw, 0x9000, "SELECT ISD-R");
    channel
}

/// The class byte for a channel.
pub fn cla(channel: u8, proprietary: bool) -> u8 {
    ferrosim_euicc::apdu::Cla::encode(channel, proprietary)
}

/// Sends an ES10 command as STORE DATA blocks of `block` bytes; returns the
/// response data and the final status word.
pub fn es10_sw(
    card: &mut VirtualEuicc,
    channel: u8,
    command: &[u8],
    block: usize,
) -> (Vec<u8>, u16) {
    let chunks: Vec<&[u8]> = command.chunks(block).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut apdu = vec![
            cla(channel, true),
            0xE2,
            if last { 0x91 } else { 0x11 },
            i as u8,
            chunk.len() as u8,
        ];
        apdu.extend_from_slice(chunk);
        if last {
            apdu.push(0x00);
            return transmit(card, &apdu);
        }
        let (data, sw) = transmit(card, &apdu);
        assert_eq!(
            (data.as_slice(), sw),
            (&[][..], 0x9000),
            "intermediate block {i}"
        );
    }
    unreachable!("empty ES10 command")
}

/// Sends an ES10 command in 120-byte blocks and expects `9000`.
pub fn es10(card: &mut VirtualEuicc, channel: u8, command: &[u8]) -> Vec<u8> {
    let (data, sw) = es10_sw(card, channel, command, 120);
    assert_eq!(sw, 0x9000, "ES10 {:02X?}", &command[..command.len().min(4)]);
    data
}

/// Sends an ES10 command in 120-byte blocks with the card drawing its
/// randomness from `rng`; expects `9000` and returns the response data.
pub fn es10_with_rng(
    card: &mut VirtualEuicc,
    channel: u8,
    command: &[u8],
    rng: &mut dyn rand::CryptoRng,
) -> Vec<u8> {
    let chunks: Vec<&[u8]> = command.chunks(120).collect();
    let mut data = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut apdu = vec![
            cla(channel, true),
            0xE2,
            if last { 0x91 } else { 0x11 },
            i as u8,
            chunk.len() as u8,
        ];
        apdu.extend_from_slice(chunk);
        apdu.push(0x00);
        let (mut part, mut sw) = split(&card.handle_apdu_with_rng(&apdu, Timestamp::now(), rng));
        while sw >> 8 == 0x61 {
            let get = [apdu[0], 0xC0, 0x00, 0x00, (sw & 0xFF) as u8];
            let (more, next) = split(&card.handle_apdu(&get, Timestamp::now()));
            part.extend_from_slice(&more);
            sw = next;
        }
        assert_eq!(sw, 0x9000, "ES10 block {i}");
        data.extend_from_slice(&part);
    }
    data
}

/// GetEuiccChallenge.
pub fn challenge(card: &mut VirtualEuicc, channel: u8) -> [u8; 16] {
    let response = es10(card, channel, &[0xBF, 0x2E, 0x00]);
    let r: rsp::GetEuiccChallengeResponse = decode_der(&response).expect("challenge response");
    *r.euicc_challenge.0
}

/// ctxParams1 with a matching id and a minimal device info.
pub fn ctx_params1(matching_id: Option<&str>) -> Vec<u8> {
    let caps = rsp::DeviceCapabilities::new(
        None, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
    );
    let info = rsp::DeviceInfo::new(
        rsp::Octet4(FixedOctetString::new([0x35, 0x29, 0x06, 0x11])),
        caps,
        None,
    );
    let ctx = rsp::CtxParams1::ctxParamsForCommonAuthentication(
        rsp::CtxParamsForCommonAuthentication::new(matching_id.map(str::to_owned), info),
    );
    encode_der(&ctx).expect("ctxParams1")
}

/// The LPA's assembly of AuthenticateServerRequest from the
/// initiateAuthentication fields.
pub fn authenticate_server_request(
    server_signed1: &[u8],
    server_signature1: &[u8],
    ci_pkid: &[u8],
    server_certificate: &[u8],
    ctx_params1: &[u8],
) -> Vec<u8> {
    tlv(
        0xBF38,
        &[
            server_signed1,
            server_signature1,
            ci_pkid,
            server_certificate,
            ctx_params1,
        ]
        .concat(),
    )
}

/// The LPA's assembly of PrepareDownloadRequest.
pub fn prepare_download_request(
    smdp_signed2: &[u8],
    smdp_signature2: &[u8],
    hash_cc: Option<&[u8; 32]>,
    smdp_certificate: &[u8],
) -> Vec<u8> {
    let hash = hash_cc.map(|h| tlv(0x04, h)).unwrap_or_default();
    tlv(
        0xBF21,
        &[smdp_signed2, smdp_signature2, &hash, smdp_certificate].concat(),
    )
}

/// Cuts a Bound Profile Package as SGP.22 2.5.5 tells the LPA to: `BF36`
/// header with `BF23`, whole `A0`, `A1` header, each `88`, whole `A2`, `A3`
/// header, each `86`.
pub fn split_bpp(bpp: &[u8]) -> Vec<Vec<u8>> {
    let root = Tlv::parse_tagged(bpp, 0xBF36).expect("BF36");
    let mut children = root.children().map(|c| c.expect("BPP element"));
    let init = children.next().expect("BF23");
    let mut pieces = vec![[root.header(), init.raw].concat()];
    for child in children {
        match child.tag {
            0xA1 | 0xA3 => {
                pieces.push(child.header().to_vec());
                pieces.extend(child.children().map(|s| s.expect("segment").raw.to_vec()));
            }
            _ => pieces.push(child.raw.to_vec()),
        }
    }
    pieces
}

/// Loads a split package piece by piece: every piece but the last answers
/// `9000` without data; returns the last answer (the BF37) and how many
/// pieces were sent.
pub fn load_bpp(card: &mut VirtualEuicc, channel: u8, bpp: &[u8]) -> (Vec<u8>, usize) {
    let pieces = split_bpp(bpp);
    for (i, piece) in pieces.iter().enumerate() {
        let (data, sw) = es10_sw(card, channel, piece, 255);
        assert_eq!(sw, 0x9000, "BPP piece {i}");
        if !data.is_empty() {
            return (data, i + 1);
        }
    }
    panic!("no installation result after {} pieces", pieces.len())
}

/// The metadata of the test profile type.
pub fn type_metadata(policy_rules: PolicyRules) -> ProfileTypeMetadata {
    ProfileTypeMetadata {
        service_provider_name: "Test Operator".into(),
        profile_name: "TS.48 test profile".into(),
        profile_class: ProfileClass::Operational,
        policy_rules,
        owner_mcc_mnc: Some("00101".into()),
        fallback_allowed: false,
    }
}

/// An SM-DP+ stand-in that signs with a test PKI's DPauth and DPpb keys,
/// for driving the eUICC into situations a correct SM-DP+ never creates.
pub struct FakeSmdp {
    pub pki: &'static TestPki,
    pub address: String,
    pub transaction_id: Vec<u8>,
    dpauth: SoftwareKey,
    dppb: SoftwareKey,
}

impl FakeSmdp {
    pub fn new(pki: &'static TestPki) -> Self {
        Self {
            pki,
            address: SMDP_ADDRESS.to_owned(),
            transaction_id: vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            dpauth: pki.dp_auth.signing_key().expect("DPauth key"),
            dppb: pki.dp_pb.signing_key().expect("DPpb key"),
        }
    }

    /// serverSigned1 for `challenge`, signed; returns (signed1, signature TLV).
    pub fn server_signed1(&self, challenge: &[u8; 16], address: &str) -> (Vec<u8>, Vec<u8>) {
        let signed1 = encode_der(&rsp::ServerSigned1::new(
            rsp::TransactionId(OctetString::from(self.transaction_id.clone())),
            rsp::Octet16(FixedOctetString::new(*challenge)),
            address.to_owned(),
            rsp::Octet16(FixedOctetString::new([0x5A; 16])),
        ))
        .expect("serverSigned1");
        let sig = wrap_5f37(&self.dpauth.sign_raw(&signed1).expect("sign")).expect("5F37");
        (signed1, sig)
    }

    /// A complete AuthenticateServerRequest for `challenge`.
    pub fn authenticate_server(&self, challenge: &[u8; 16]) -> Vec<u8> {
        let (signed1, sig) = self.server_signed1(challenge, &self.address);
        authenticate_server_request(
            &signed1,
            &sig,
            &self.ci_pkid(),
            self.pki.dp_auth.certificate.der(),
            &ctx_params1(Some("MATCHING-ID-1")),
        )
    }

    /// euiccCiPKIdToBeUsed: `04 len <CI key id>`.
    pub fn ci_pkid(&self) -> Vec<u8> {
        let id = self.pki.ci.certificate.subject_key_id().expect("CI key id");
        tlv(0x04, id.as_bytes())
    }

    /// PrepareDownloadRequest answering an AuthenticateServerResponse.
    pub fn prepare_download(
        &self,
        auth_response: &[u8],
        tid: &[u8],
        hash_cc: Option<&[u8; 32]>,
    ) -> Vec<u8> {
        let sig1 = signed::euicc_signed1(auth_response).expect("euiccSigned1");
        let signed2 = encode_der(&rsp::SmdpSigned2::new(
            rsp::TransactionId(OctetString::from(tid.to_vec())),
            hash_cc.is_some(),
            None,
        ))
        .expect("smdpSigned2");
        let to_sign = [signed2.as_slice(), sig1.signature_tlv].concat();
        let sig2 = wrap_5f37(&self.dppb.sign_raw(&to_sign).expect("sign")).expect("5F37");
        prepare_download_request(&signed2, &sig2, hash_cc, self.pki.dp_pb.certificate.der())
    }

    /// A Bound Profile Package for the eUICC's one-time key.
    pub fn bpp(
        &self,
        tid: &[u8],
        eid: &[u8; 16],
        prepare_response: &[u8],
        metadata: &[u8],
        package: &[u8],
    ) -> Vec<u8> {
        let response: rsp::PrepareDownloadResponse =
            decode_der(prepare_response).expect("PrepareDownloadResponse");
        let rsp::PrepareDownloadResponse::downloadResponseOk(ok) = response else {
            panic!("PrepareDownload refused: {response:?}");
        };
        ferrosim_smdp::bpp::build_bpp(
            &ferrosim_smdp::bpp::BppInput {
                transaction_id: tid,
                host_id: b"fake-smdp",
                eid,
                euicc_otpk: &ok.euicc_signed2.euicc_otpk,
                metadata,
                profile: package,
                dppb: &self.dppb,
            },
            &mut rand::rng(),
        )
        .expect("BPP")
    }

    /// StoreMetadata for a package, notifications to this SM-DP+.
    pub fn metadata(&self, package: &[u8], rules: PolicyRules) -> Vec<u8> {
        let p = ProfilePackage::parse(package).expect("package");
        let iccid = Iccid::new(&p.header().iccid_digits).expect("ICCID");
        store_metadata_der(&iccid, &type_metadata(rules), &self.address).expect("metadata")
    }

    /// Authenticates, binds and installs `package` on the card; returns the
    /// ProfileInstallationResult.
    pub fn install(
        &self,
        card: &mut VirtualEuicc,
        channel: u8,
        package: &[u8],
        rules: PolicyRules,
    ) -> Vec<u8> {
        let challenge = challenge(card, channel);
        let auth = es10(card, channel, &self.authenticate_server(&challenge));
        let prepared = es10(
            card,
            channel,
            &self.prepare_download(&auth, &self.transaction_id, None),
        );
        let eid = card.identity().eid().to_bcd();
        let bpp = self.bpp(
            &self.transaction_id,
            &eid,
            &prepared,
            &self.metadata(package, rules),
            package,
        );
        load_bpp(card, channel, &bpp).0
    }
}

/// The finalResult of a ProfileInstallationResult: Ok(AID) or Err((command, reason)).
pub fn pir_result(pir: &[u8]) -> Result<Vec<u8>, (i64, i64)> {
    let result: rsp::ProfileInstallationResult = decode_der(pir).expect("BF37");
    match result.profile_installation_result_data.final_result {
        rsp::ProfileInstallationResultDataFinalResult::successResult(ok) => Ok(ok.aid.to_vec()),
        rsp::ProfileInstallationResultDataFinalResult::errorResult(e) => Err((
            i64::try_from(&e.bpp_command_id.0).expect("command"),
            i64::try_from(&e.error_reason.0).expect("reason"),
        )),
        other => panic!("unexpected finalResult {other:?}"),
    }
}

/// Verifies a ProfileInstallationResult's signature with the eUICC key.
pub fn verify_pir(card: &VirtualEuicc, pir: &[u8]) {
    let parts = signed::profile_installation_result(pir).expect("BF37 parts");
    card.identity()
        .euicc_certificate()
        .unwrap()
        .verifying_key()
        .verify_raw(parts.signed, parts.signature)
        .expect("euiccSignPIR verifies");
}

/// Checks an OtherSignedNotification: its content, the eUICC signature over
/// `tbsOtherNotification` as signed, and the certificate chain it carries.
pub fn verify_other_notification(
    signed_notification: &[u8],
    op: ferrosim_euicc::NotificationOperation,
    iccid: &[u8; 10],
    address: &str,
    seq: u64,
) {
    let decoded: rsp::PendingNotification =
        decode_der(signed_notification).expect("PendingNotification");
    let rsp::PendingNotification::otherSignedNotification(other) = decoded else {
        panic!("not an OtherSignedNotification");
    };
    let tbs = &other.tbs_other_notification;
    assert!(op.is_in(&tbs.profile_management_operation), "{op:?}");
    assert_eq!(tbs.profile_management_operation.0.count_ones(), 1);
    assert_eq!(tbs.notification_address, address);
    assert_eq!(tbs.iccid.as_ref().map(|i| *i.0), Some(*iccid));
    assert_eq!(u64::try_from(&tbs.seq_number).unwrap(), seq);
    let outer = Tlv::parse_tagged(signed_notification, 0x30).unwrap();
    let children: Vec<Tlv<'_>> = outer.children().map(Result::unwrap).collect();
    assert_eq!(
        children.iter().map(|c| c.tag).collect::<Vec<_>>(),
        [0xBF2F, 0x5F37, 0x30, 0x30]
    );
    let chain = ferrosim_pki::verify_euicc_chain(
        &pki().trust_store().unwrap(),
        children[3].raw,
        children[2].raw,
        SystemTime::now(),
    )
    .expect("eUICC chain");
    chain
        .certificate
        .verifying_key()
        .verify_raw(children[0].raw, children[1].value)
        .expect("notification signature");
}
