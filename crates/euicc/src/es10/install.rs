//! LoadBoundProfilePackage (SGP.22 5.7.6) and the installation it ends
//! with: the pieces go to the [`BppLoader`]; the complete profile package is
//! checked against its metadata and the eUICC's state and installed
//! (disabled). Success or failure, the eUICC signs a ProfileInstallationResult
//! (`BF37`), answers the last piece with it and keeps it as a pending
//! notification.

use ferrosim_ids::Timestamp;

use ferrosim_asn1::pe;
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::{encode_der, rsp};
use ferrosim_ids::Iccid;
use ferrosim_saip::{ProfilePackage, bcd};
use tracing::{info, warn};

use super::auth::PROFILE_MEMORY_BYTES;
use super::{Es10Reply, Isdr, ServerSession};
use crate::apdu::StatusWord;
use crate::bpp::{BppLoader, LoadFailure, Loaded, Progress, SessionBinding, TAG_BPP};
use crate::codes::{BppCommandId, InstallErrorReason};
use crate::profile::{
    InstallInput, InstalledProfile, NotificationOperation, class_of, dotted_to_oid,
};
use crate::state::StoredNotification;

/// AID prefix of the ISD-Ps this eUICC creates (the ISD-R's, with the last
/// two bytes numbering the ISD-P).
const ISDP_AID_PREFIX: [u8; 14] = [
    0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x00, 0x00,
];

/// What the ProfileInstallationResult reports.
struct Outcome {
    result: Result<[u8; 16], LoadFailure>,
    /// ICCID of the metadata, when it got that far.
    iccid: Option<[u8; 10]>,
    /// Where the install notification goes.
    address: String,
}

impl Isdr {
    /// One piece of a Bound Profile Package. Needs a session that went
    /// through PrepareDownload; `BF36` starts a new package.
    pub(super) fn load_bound_profile_package(
        &mut self,
        tag: u32,
        piece: &[u8],
        now: Timestamp,
    ) -> Es10Reply {
        let Isdr {
            session,
            state,
            identity,
            ..
        } = self;
        let Some(session) = session.as_mut() else {
            return Es10Reply::Status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        let (Some(server), Some(download)) = (&session.server, &session.download) else {
            return Es10Reply::Status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        if tag == TAG_BPP {
            session.loader = Some(BppLoader::new());
        }
        let Some(loader) = session.loader.as_mut() else {
            return Es10Reply::Status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        // Runs once per package, when StoreMetadata has arrived.
        let check_metadata = |m: &rsp::StoreMetadataRequest| {
            if class_of(m).is_none() {
                return Err(InstallErrorReason::UnsupportedProfileClass);
            }
            let iccid = bcd::swapped_digits(m.iccid.0.as_ref()).unwrap_or_default();
            if state.profiles.iter().any(|p| p.iccid == iccid) {
                return Err(InstallErrorReason::IccidAlreadyExistsOnEuicc);
            }
            Ok(())
        };
        let eid = identity.eid().to_bcd();
        let binding = SessionBinding {
            transaction_id: server.transaction_id.as_bytes(),
            dppb: download.dppb.certificate.verifying_key(),
            one_time_key: &download.one_time_key,
            eid: &eid,
        };
        let progress = loader.feed(piece, &binding, &check_metadata);
        if let Ok(Progress::NeedMore) = progress {
            return Es10Reply::Empty;
        }
        let server = server.clone();
        let outcome = match progress {
            Ok(Progress::NeedMore) => return Es10Reply::Empty,
            Ok(Progress::Complete(loaded)) => {
                let address = install_address(&loaded.metadata, &server);
                let iccid = Some(*loaded.metadata.iccid.0);
                self.session = None;
                self.retained_key = None;
                Outcome {
                    result: self.install(&server, *loaded, now),
                    iccid,
                    address,
                }
            }
            Err(failure) => {
                let address = loader.metadata().map_or_else(
                    || server.server_address.clone(),
                    |m| install_address(m, &server),
                );
                let iccid = loader.metadata().map(|m| *m.iccid.0);
                self.session = None;
                self.retained_key = None;
                Outcome {
                    result: Err(failure),
                    iccid,
                    address,
                }
            }
        };
        self.installation_result(&server, outcome)
    }

    /// Installs a complete package: checks it, decodes it, stores it disabled.
    /// Returns the ISD-P AID.
    fn install(
        &mut self,
        server: &ServerSession,
        mut loaded: Loaded,
        now: Timestamp,
    ) -> Result<[u8; 16], LoadFailure> {
        let fail = |reason| LoadFailure {
            command: BppCommandId::LoadProfileElements,
            reason,
        };
        // The decrypted bytes are checked where they are, not copied; they
        // are wiped when the installation ends, as is a refused package.
        let plain = std::mem::take(&mut *loaded.package);
        let package = WipedOnDrop(
            ProfilePackage::from_vec(plain)
                .map_err(|_| fail(InstallErrorReason::PeProcessingError))?,
        );
        let package = &package.0;
        // The metadata ICCID is coded as in EF.ICCID; some SM-DP+ write it
        // in plain BCD, which is accepted when it names the same profile.
        let iccid = Iccid::new(&package.header().iccid_digits)
            .map_err(|_| fail(InstallErrorReason::PeProcessingError))?;
        let coded = loaded.metadata.iccid.0.as_ref();
        let names_it = |digits: Result<String, _>| digits.is_ok_and(|d| iccid == d);
        if !names_it(bcd::swapped_digits(coded)) && !names_it(bcd::in_order_digits(coded)) {
            return Err(fail(InstallErrorReason::DataMismatch));
        }
        if self.state.profile(&iccid).is_some() {
            return Err(fail(InstallErrorReason::IccidAlreadyExistsOnEuicc));
        }
        let summary = package
            .summary()
            .map_err(|_| fail(InstallErrorReason::PeProcessingError))?;
        let used: usize = self
            .state
            .profiles
            .iter()
            .map(|p| p.package_len as usize)
            .sum();
        if used + package.as_bytes().len() > PROFILE_MEMORY_BYTES {
            return Err(fail(InstallErrorReason::InsufficientMemoryForProfile));
        }
        let isdp_aid = self.allocate_isdp_aid();
        let profile = InstalledProfile::new(InstallInput {
            iccid,
            metadata_der: &loaded.metadata_der,
            metadata: &loaded.metadata,
            package,
            summary: &summary,
            isdp_aid,
            dp_oid: loaded.dp_oid,
            smdp_address: &server.server_address,
            smdp_oid: &server.smdp_oid,
            installed_at: now,
        });
        info!(iccid = %profile.iccid, name = %loaded.metadata.profile_name, "profile installed");
        let iccid = profile.iccid.clone();
        self.state.profiles.push(profile);
        self.note_installed(&iccid);
        self.changed();
        Ok(isdp_aid)
    }

    /// A fresh ISD-P AID, not used by an installed profile.
    fn allocate_isdp_aid(&mut self) -> [u8; 16] {
        loop {
            let n = self.state.isdp_counter;
            self.state.isdp_counter = n.wrapping_add(1);
            // 0x1000, 0x1100, ... 0xFF00, then 0x1001, ...: 61 440 AIDs.
            let slot = n % 0xF000;
            let number = 0x1000 + ((slot % 0xF0) << 8) + slot / 0xF0;
            let mut aid = [0u8; 16];
            aid[..14].copy_from_slice(&ISDP_AID_PREFIX);
            aid[14..].copy_from_slice(&(number as u16).to_be_bytes());
            if !self.state.profiles.iter().any(|p| p.isdp_aid == aid) {
                return aid;
            }
        }
    }

    /// Signs the ProfileInstallationResult, keeps it as a pending
    /// notification and answers with it.
    fn installation_result(&mut self, server: &ServerSession, outcome: Outcome) -> Es10Reply {
        let seq = self.state.next_seq_number();
        let final_result = match &outcome.result {
            Ok(aid) => rsp::ProfileInstallationResultDataFinalResult::successResult(
                rsp::SuccessResult::new(OctetString::from(aid.to_vec()), sima_response(None)),
            ),
            Err(failure) => {
                warn!(?failure, "profile installation failed");
                rsp::ProfileInstallationResultDataFinalResult::errorResult(rsp::ErrorResult::new(
                    rsp::BppCommandId(Integer::from(failure.command.code())),
                    rsp::ErrorReason(Integer::from(failure.reason.code())),
                    (failure.reason == InstallErrorReason::PeProcessingError)
                        .then(|| sima_response(Some(3))),
                ))
            }
        };
        let data = rsp::ProfileInstallationResultData::new(
            rsp::TransactionId(OctetString::from(server.transaction_id.as_bytes().to_vec())),
            rsp::NotificationMetadata::new(
                Integer::from(seq),
                NotificationOperation::Install.event(),
                outcome.address.clone(),
                outcome.iccid.map(|i| rsp::Iccid(FixedOctetString::new(i))),
            ),
            dotted_to_oid(&server.smdp_oid).unwrap_or_else(|| {
                ferrosim_asn1::rasn::types::ObjectIdentifier::new_unchecked(vec![0, 0].into())
            }),
            final_result,
        );
        let Ok(bf27) = encode_der(&data) else {
            return Es10Reply::Status(StatusWord(0x6F00));
        };
        let Some(signature) = self.identity.sign_5f37(&bf27).ok() else {
            return Es10Reply::Status(StatusWord(0x6F00));
        };
        let pir = tlv(0xBF37, &[bf27, signature].concat());
        self.state.notifications.push(StoredNotification {
            seq_number: seq,
            operation: NotificationOperation::Install,
            address: outcome.address,
            iccid: outcome.iccid.and_then(|i| Iccid::from_bcd(&i).ok()),
            signed: pir.clone(),
        });
        self.changed();
        Es10Reply::Data(pir)
    }
}

/// A received profile package whose bytes (keys, PINs) are wiped when it
/// is dropped.
struct WipedOnDrop(ProfilePackage);

impl Drop for WipedOnDrop {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

/// The install notification address of the metadata, or the SM-DP+'s.
fn install_address(metadata: &rsp::StoreMetadataRequest, server: &ServerSession) -> String {
    metadata
        .notification_configuration_info
        .iter()
        .flatten()
        .find(|n| NotificationOperation::Install.is_in(&n.profile_management_operation))
        .map_or_else(
            || server.server_address.clone(),
            |n| n.notification_address.clone(),
        )
}

/// SAIP `EUICCResponse`: every element processed (`status` ok), or the
/// installation aborted with `status`.
fn sima_response(error_status: Option<i64>) -> OctetString {
    let status = pe::PEStatus::new(Integer::from(error_status.unwrap_or(0)), None, None, None);
    let response = pe::EUICCResponse::new(vec![status], error_status.map(|_| ()), None);
    OctetString::from(encode_der(&response).unwrap_or_default())
}
