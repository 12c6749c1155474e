//! What the ES9+ tests of the SM-DP+ run against: an SM-DP+ on a
//! [`MemStore`] with a test PKI and a TS.48 profile type ([`World`]), and a
//! scripted device ([`Device`]): the LPA and eUICC halves of each ES9+ step,
//! written from SGP.22 with the eUICC key of the test PKI. The device signs
//! deterministically (RFC 6979, p256) and uses a fixed one-time key, so the
//! same calls give the same requests; it checks nothing the SM-DP+ sends
//! (that is the eUICC's job, tested in `ferrosim-euicc`) except where a test
//! asks it to open a Bound Profile Package.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test code

use std::time::{Duration, UNIX_EPOCH};

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest, RequestHeader};
use ferrosim_asn1::json::es9::*;
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, ObjectIdentifier, OctetString};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::values::{CancelSessionReason, NotificationOperation};
use ferrosim_asn1::{decode_der, encode_der, pkix, rsp};
use ferrosim_crypto::bsp::BspDecryptor;
use ferrosim_crypto::bsp::decode_replace_session_keys;
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_crypto::kdf::derive_session_keys;
use ferrosim_pki::{Eid, Oid, TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi, ProfilePackage};
use ferrosim_smdp::es2::token_hash;
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::inventory::{self, ProfileRange, ProfileTypeImport};
use ferrosim_smdp::memstore::MemStore;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::store::{CatalogStore, Operator, ProfileStore};
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Credential, Randomness, Smdp, SmdpConfig};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};

/// The SM-DP+ address of the tests.
pub const ADDRESS: &str = "smdp.test.example";
/// The operator of the tests.
pub const OPERATOR: &str = "test-op";
/// Its profile type.
pub const PROFILE_TYPE: &str = "ts48";
/// The time the tests run at (2026-01-01).
pub const NOW: Timestamp = Timestamp(1_767_225_600_000);
/// A TS.48 test profile package (`testdata/upp`, GSMA TS.48 v2).
pub const PACKAGE: &[u8] =
    include_bytes!("../../../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");

/// A test PKI with `euiccs` eUICCs (CI, EUM, DPauth, DPpb issued for
/// [`ADDRESS`]), valid from 2020 to 2099 so that [`NOW`] is inside.
pub fn pki(euiccs: usize) -> TestPki {
    let year = |y: u64| UNIX_EPOCH + Duration::from_secs((y - 1970) * 31_556_952);
    TestPki::generate(&TestPkiOptions {
        euicc_count: euiccs,
        smdp_address: ADDRESS.into(),
        not_before: year(2020),
        not_after: year(2099),
        ..TestPkiOptions::default()
    })
    .unwrap()
}

/// The SM-DP+ configuration of a test PKI.
pub fn config(pki: &TestPki) -> SmdpConfig {
    let credential = |issued: &ferrosim_pki::Issued| Credential {
        certificate: issued.certificate.clone(),
        key: std::sync::Arc::new(issued.signing_key().unwrap()),
    };
    SmdpConfig::new(
        ADDRESS.to_owned(),
        credential(&pki.dp_auth),
        credential(&pki.dp_pb),
        pki.trust_store().unwrap(),
    )
    .unwrap()
}

/// An SM-DP+ on a [`MemStore`] holding one operator, the TS.48 profile type
/// and `profiles` profiles of it.
pub struct World {
    pub smdp: Smdp<MemStore>,
    pub store: MemStore,
    pub operator: Operator,
}

impl World {
    /// With randomness from the operating system.
    pub async fn new(pki: &TestPki, profiles: u64) -> Self {
        Self::with_randomness(pki, profiles, Randomness::os()).await
    }

    /// With the given randomness (the profiles' keys come from it too).
    pub async fn with_randomness(pki: &TestPki, profiles: u64, randomness: Randomness) -> Self {
        Self::with_config(config(pki), profiles, randomness).await
    }

    /// With a configuration of one's own.
    pub async fn with_config(config: SmdpConfig, profiles: u64, randomness: Randomness) -> Self {
        let store = MemStore::new();
        let operator = Operator {
            id: OperatorId::new(OPERATOR).unwrap(),
            name: "Test Operator".into(),
            token_hash: token_hash("secret"),
            callback_url: None,
        };
        store.put_operator(&operator).await.unwrap();
        inventory::import_profile_type(
            &store,
            ProfileTypeImport {
                operator: operator.id.clone(),
                name: PROFILE_TYPE.into(),
                package: PACKAGE.to_vec(),
                service_provider_name: Some("Test SP".into()),
                profile_name: Some("TS.48".into()),
                profile_class: ProfileClass::Operational,
                policy_rules: PolicyRules::default(),
                owner_mcc_mnc: None,
                fallback_allowed: false,
            },
            NOW,
        )
        .await
        .unwrap();
        let range = ProfileRange {
            count: profiles,
            first_iccid: Iccid::from_body("894400000000000001").unwrap(),
            first_imsi: Imsi::with_mnc_len("001010000000001", 2).unwrap(),
        };
        inventory::generate_profiles(
            &store,
            &operator.id,
            PROFILE_TYPE,
            &range,
            &mut randomness.for_call(),
            NOW,
        )
        .await
        .unwrap();
        let smdp = Smdp::with_randomness(config, store.clone(), randomness);
        Self {
            smdp,
            store,
            operator,
        }
    }

    /// Orders and releases a profile through ES2+; returns its ICCID and
    /// matching id.
    pub async fn order(&self, eid: Option<&Eid>, code: Option<&str>) -> (Iccid, String) {
        let header = RequestHeader {
            function_requester_identifier: OPERATOR.into(),
            function_call_identifier: "call".into(),
        };
        let ordered = self
            .smdp
            .download_order(
                &self.operator,
                &DownloadOrderRequest {
                    header: header.clone(),
                    eid: eid.map(ToString::to_string),
                    iccid: None,
                    profile_type: Some(PROFILE_TYPE.into()),
                },
                NOW,
            )
            .await
            .unwrap();
        let confirmed = self
            .smdp
            .confirm_order(
                &self.operator,
                &ConfirmOrderRequest {
                    header,
                    iccid: ordered.iccid.clone(),
                    eid: None,
                    matching_id: None,
                    confirmation_code: code.map(str::to_owned),
                    smds_address: None,
                    release_flag: true,
                },
                NOW,
            )
            .await
            .unwrap();
        (Iccid::new(&ordered.iccid).unwrap(), confirmed.matching_id)
    }

    /// The profile record of `iccid`.
    pub async fn profile(&self, iccid: &Iccid) -> ferrosim_smdp::order::ProfileRecord {
        self.store.profile(iccid).await.unwrap().unwrap()
    }

    /// The personalised package of `iccid`, as the SM-DP+ must deliver it.
    pub async fn personalised(&self, iccid: &Iccid) -> Vec<u8> {
        let values = self.store.personalisation(iccid).await.unwrap().unwrap();
        ProfilePackage::parse(PACKAGE)
            .unwrap()
            .personalise(&values)
            .unwrap()
    }
}

/// The device side of the ES9+ steps for one eUICC of a test PKI.
pub struct Device {
    pub eid: Eid,
    key: SigningKey,
    euicc_certificate: Vec<u8>,
    eum_certificate: Vec<u8>,
    ci_key_id: Vec<u8>,
    one_time: OneTimeKeyPair,
    challenge: [u8; 16],
}

impl Device {
    /// The `n`th eUICC of `pki`.
    pub fn new(pki: &TestPki, n: usize) -> Self {
        let issued = &pki.euiccs[n];
        let n = u8::try_from(n).unwrap();
        Self {
            eid: issued.certificate.eid().unwrap(),
            key: SigningKey::from_pkcs8_der(issued.key_pkcs8_der()).unwrap(),
            euicc_certificate: issued.certificate.der().to_vec(),
            eum_certificate: pki.eum.certificate.der().to_vec(),
            ci_key_id: pki
                .ci
                .certificate
                .subject_key_id()
                .unwrap()
                .as_bytes()
                .to_vec(),
            one_time: OneTimeKeyPair::from_scalar(&[0x5A ^ n; 32]).unwrap(),
            challenge: [0xC0 | n; 16],
        }
    }

    /// `data`'s signature as the eUICC sends it (5F37 TLV over raw r||s).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(data);
        tlv(0x5F37, &signature.to_bytes())
    }

    /// EUICCInfo1 naming the test CI for verification and signing (SVN `svn`).
    pub fn info1(&self, svn: [u8; 3], ci_key_ids: &[Vec<u8>]) -> Vec<u8> {
        let ids: Vec<pkix::SubjectKeyIdentifier> = ci_key_ids
            .iter()
            .map(|k| pkix::SubjectKeyIdentifier(pkix::KeyIdentifier(OctetString::from(k.clone()))))
            .collect();
        encode_der(&rsp::EUICCInfo1::new(
            rsp::VersionType(FixedOctetString::new(svn)),
            ids.clone(),
            ids,
        ))
        .unwrap()
    }

    /// initiateAuthentication for `address`.
    pub fn initiate(&self, address: &str) -> InitiateAuthenticationRequest {
        InitiateAuthenticationRequest {
            euicc_challenge: Base64(self.challenge.to_vec()),
            euicc_info1: Base64(self.info1([2, 2, 0], std::slice::from_ref(&self.ci_key_id))),
            smdp_address: address.into(),
        }
    }

    /// The eUICC's challenge.
    pub fn challenge(&self) -> [u8; 16] {
        self.challenge
    }

    /// authenticateClient answering `init`, with this matching id (or none).
    pub fn authenticate(
        &self,
        init: &InitiateAuthenticationResponse,
        matching_id: Option<&str>,
    ) -> AuthenticateClientRequest {
        let signed1: rsp::ServerSigned1 = decode_der(&init.server_signed1.0).unwrap();
        self.authenticate_with(
            &init.transaction_id,
            &signed1.server_address,
            signed1.server_challenge.0.as_ref(),
            matching_id,
            |signed| signed.to_vec(),
        )
    }

    /// authenticateClient with the given fields; `tamper` may change the
    /// signed bytes after they were signed.
    pub fn authenticate_with(
        &self,
        transaction_id: &TransactionId,
        address: &str,
        server_challenge: &[u8],
        matching_id: Option<&str>,
        tamper: impl Fn(&[u8]) -> Vec<u8>,
    ) -> AuthenticateClientRequest {
        let tid = transaction_id.as_bytes().to_vec();
        // EUICCInfo2 is read by no SM-DP+ check; a minimal one (its SVN).
        let info2 = tlv(0xBF22, &tlv(0x82, &[2, 2, 0]));
        let device_info = tlv(
            0xA1,
            &[tlv(0x80, &[0x35, 0x29, 0x06, 0x11]), tlv(0xA1, &[])].concat(),
        );
        let ctx = match matching_id {
            Some(m) => tlv(0xA0, &[tlv(0x80, m.as_bytes()), device_info].concat()),
            None => tlv(0xA0, &device_info),
        };
        let signed1 = tlv(
            0x30,
            &[
                tlv(0x80, &tid),
                tlv(0x83, address.as_bytes()),
                tlv(0x84, server_challenge),
                info2,
                ctx,
            ]
            .concat(),
        );
        let signature = self.sign(&signed1);
        let ok = [
            tamper(&signed1),
            signature,
            self.euicc_certificate.clone(),
            self.eum_certificate.clone(),
        ]
        .concat();
        AuthenticateClientRequest {
            transaction_id: transaction_id.clone(),
            authenticate_server_response: Base64(tlv(0xBF38, &tlv(0xA0, &ok))),
        }
    }

    /// The eUICC refused AuthenticateServer with `code`.
    pub fn authenticate_error(
        &self,
        transaction_id: &TransactionId,
        code: u8,
    ) -> AuthenticateClientRequest {
        let tid = transaction_id.as_bytes().to_vec();
        let error = tlv(0xA1, &[tlv(0x80, &tid), tlv(0x02, &[code])].concat());
        AuthenticateClientRequest {
            transaction_id: transaction_id.clone(),
            authenticate_server_response: Base64(tlv(0xBF38, &error)),
        }
    }

    /// getBoundProfilePackage answering `auth`, with the hashed confirmation
    /// code when one is given.
    pub fn prepare_download(
        &self,
        auth: &AuthenticateClientResponse,
        code: Option<&str>,
    ) -> GetBoundProfilePackageRequest {
        self.prepare_download_signed(auth, code, &auth.smdp_signature2.0)
    }

    /// getBoundProfilePackage whose euiccSignature2 covers `smdp_signature2`.
    pub fn prepare_download_signed(
        &self,
        auth: &AuthenticateClientResponse,
        code: Option<&str>,
        smdp_signature2: &[u8],
    ) -> GetBoundProfilePackageRequest {
        let signed2: rsp::SmdpSigned2 = decode_der(&auth.smdp_signed2.0).unwrap();
        let tid = signed2.transaction_id.0.to_vec();
        let hash_cc = code.map(|c| {
            let mut h = Sha256::new();
            h.update(Sha256::digest(c.as_bytes()));
            h.update(&tid);
            rsp::Octet32(FixedOctetString::new(h.finalize().into()))
        });
        let euicc_signed2 = encode_der(&rsp::EUICCSigned2::new(
            rsp::TransactionId(OctetString::from(tid)),
            OctetString::from(self.one_time.public_sec1().to_vec()),
            hash_cc,
        ))
        .unwrap();
        let signature = self.sign(&[euicc_signed2.as_slice(), smdp_signature2].concat());
        GetBoundProfilePackageRequest {
            transaction_id: auth.transaction_id.clone(),
            prepare_download_response: Base64(tlv(
                0xBF21,
                &tlv(0xA0, &[euicc_signed2, signature].concat()),
            )),
        }
    }

    /// The eUICC refused PrepareDownload with `code`.
    pub fn refuse_download(
        &self,
        transaction_id: &TransactionId,
        code: i64,
    ) -> GetBoundProfilePackageRequest {
        let tid = transaction_id.as_bytes().to_vec();
        let refusal = rsp::PrepareDownloadResponse::downloadResponseError(
            rsp::PrepareDownloadResponseError::new(
                rsp::TransactionId(OctetString::from(tid)),
                rsp::DownloadErrorCode(Integer::from(code)),
            ),
        );
        GetBoundProfilePackageRequest {
            transaction_id: transaction_id.clone(),
            prepare_download_response: Base64(encode_der(&refusal).unwrap()),
        }
    }

    /// The signed ProfileInstallationResult of session `transaction_id`: success,
    /// or `Err((bppCommandId, errorReason))`.
    pub fn installation_result(
        &self,
        transaction_id: &TransactionId,
        smdp_oid: &Oid,
        iccid: &Iccid,
        outcome: Result<(), (i64, i64)>,
    ) -> HandleNotificationRequest {
        let final_result = match outcome {
            Ok(()) => rsp::ProfileInstallationResultDataFinalResult::successResult(
                rsp::SuccessResult::new(
                    OctetString::from(vec![0xA0, 0, 0, 5, 0x59, 0x10, 0x10, 1]),
                    OctetString::from(vec![0x30, 0x00]),
                ),
            ),
            Err((command, reason)) => {
                rsp::ProfileInstallationResultDataFinalResult::errorResult(rsp::ErrorResult::new(
                    rsp::BppCommandId(Integer::from(command)),
                    rsp::ErrorReason(Integer::from(reason)),
                    None,
                ))
            }
        };
        let data = rsp::ProfileInstallationResultData::new(
            rsp::TransactionId(OctetString::from(transaction_id.as_bytes().to_vec())),
            rsp::NotificationMetadata::new(
                Integer::from(1),
                NotificationOperation::Install.event(),
                ADDRESS.to_owned(),
                Some(rsp::Iccid(FixedOctetString::new(iccid.to_bcd()))),
            ),
            asn1_oid(smdp_oid),
            final_result,
        );
        let bf27 = encode_der(&data).unwrap();
        let signature = self.sign(&bf27);
        HandleNotificationRequest {
            pending_notification: Base64(tlv(0xBF37, &[bf27, signature].concat())),
        }
    }

    /// An enable/disable/delete notification about `iccid`, with the
    /// eUICC's certificates.
    pub fn other_notification(
        &self,
        operation: NotificationOperation,
        iccid: &Iccid,
        seq: i64,
    ) -> HandleNotificationRequest {
        let tbs = encode_der(&rsp::NotificationMetadata::new(
            Integer::from(seq),
            operation.event(),
            ADDRESS.to_owned(),
            Some(rsp::Iccid(FixedOctetString::new(iccid.to_bcd()))),
        ))
        .unwrap();
        let signature = self.sign(&tbs);
        let signed = tlv(
            0x30,
            &[
                tbs,
                signature,
                self.euicc_certificate.clone(),
                self.eum_certificate.clone(),
            ]
            .concat(),
        );
        HandleNotificationRequest {
            pending_notification: Base64(signed),
        }
    }

    /// cancelSession of `transaction_id` for `reason`.
    pub fn cancel(
        &self,
        transaction_id: &TransactionId,
        smdp_oid: &Oid,
        reason: CancelSessionReason,
    ) -> CancelSessionRequest {
        let signed = encode_der(&rsp::EuiccCancelSessionSigned::new(
            rsp::TransactionId(OctetString::from(transaction_id.as_bytes().to_vec())),
            asn1_oid(smdp_oid),
            reason.to_asn1(),
        ))
        .unwrap();
        let signature = self.sign(&signed);
        CancelSessionRequest {
            transaction_id: transaction_id.clone(),
            cancel_session_response: Base64(tlv(0xBF41, &tlv(0xA0, &[signed, signature].concat()))),
        }
    }

    /// Opens a Bound Profile Package as the eUICC would: checks smdpSign
    /// with `dppb_public_key`, agrees the session keys with our one-time key,
    /// verifies and decrypts every segment; returns the transaction id and
    /// the profile package.
    pub fn open_bpp(
        &self,
        bpp: &[u8],
        host_id: &[u8],
        dppb_public_key: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let e = |what: &'static str| move |err: String| format!("{what}: {err}");
        let s = |x: &dyn std::fmt::Display| x.to_string();
        let outer = Tlv::parse_tagged(bpp, 0xBF36).map_err(|x| s(&x))?;
        let parts: Vec<Tlv<'_>> = outer
            .children()
            .collect::<Result<_, _>>()
            .map_err(|x| s(&x))?;
        let init = parts.first().ok_or("no BF23")?;
        let field = |tag| init.require(tag).map_err(|x| s(&x));
        let (remote_op, tid, crt, smdp_otpk, smdp_sign) = (
            field(0x82)?,
            field(0x80)?,
            field(0xA6)?,
            field(0x5F49)?,
            field(0x5F37)?,
        );
        let signed = [
            remote_op.raw,
            tid.raw,
            crt.raw,
            smdp_otpk.raw,
            &tlv(0x5F49, self.one_time.public_sec1()),
        ]
        .concat();
        VerifyingKey::from_sec1(dppb_public_key)
            .and_then(|k| k.verify_raw(&signed, smdp_sign.value))
            .map_err(|x| e("smdpSign")(s(&x)))?;
        let shared = self.one_time.agree(smdp_otpk.value).map_err(|x| s(&x))?;
        let keys = derive_session_keys(&shared, host_id, &self.eid.to_bcd()).map_err(|x| s(&x))?;
        let mut session = BspDecryptor::new(&keys);
        let segments = |t: &Tlv<'_>| -> Result<Vec<Vec<u8>>, String> {
            t.children()
                .map(|c| c.map(|c| c.raw.to_vec()).map_err(|x| s(&x)))
                .collect()
        };
        let [_, a0, a1, a2, a3] = parts.as_slice() else {
            return Err(format!("{} parts, not 5", parts.len()));
        };
        for seg in segments(a0)? {
            session
                .verify_and_decrypt(&seg)
                .map_err(|x| e("A0")(s(&x)))?;
        }
        for seg in segments(a1)? {
            session.verify_mac_only(&seg).map_err(|x| e("A1")(s(&x)))?;
        }
        let mut replace = Vec::new();
        for seg in segments(a2)? {
            replace.extend(
                session
                    .verify_and_decrypt(&seg)
                    .map_err(|x| e("A2")(s(&x)))?
                    .data,
            );
        }
        let ppk = decode_replace_session_keys(&replace).map_err(|x| s(&x))?;
        let mut profile = BspDecryptor::new(&ppk);
        let mut package = Vec::new();
        for seg in segments(a3)? {
            package.extend(
                profile
                    .verify_and_decrypt(&seg)
                    .map_err(|x| e("A3")(s(&x)))?
                    .data,
            );
        }
        Ok((tid.value.to_vec(), package))
    }
}

/// A PKI OID as a rasn OBJECT IDENTIFIER.
pub fn asn1_oid(oid: &Oid) -> ObjectIdentifier {
    let arcs: Vec<u32> = oid
        .arcs()
        .into_iter()
        .map(|a| u32::try_from(a).unwrap())
        .collect();
    ObjectIdentifier::new(arcs).unwrap()
}

/// The (subject, reason) of an ES9+ failure.
pub fn status(e: &ferrosim_smdp::Es9Error) -> (&'static str, &'static str) {
    let s = e.status();
    (s.subject, s.reason)
}
