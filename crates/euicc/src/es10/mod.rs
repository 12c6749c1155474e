//! The ISD-R: ES10a/b/c commands (SGP.22 5.7) received as the reassembled
//! data of STORE DATA, dispatched by their outer tag.
//!
//! - [`auth`]: GetEuiccChallenge, GetEuiccInfo1/2, AuthenticateServer.
//! - [`download`]: PrepareDownload, CancelSession.
//! - [`install`]: LoadBoundProfilePackage and the installation it ends with.
//! - [`profiles`]: GetProfilesInfo, Enable, Disable, Delete, SetNickname,
//!   eUICCMemoryReset.
//! - [`notifications`]: ListNotification, RetrieveNotificationsList,
//!   NotificationSent, and the signing of notifications.
//! - [`config`]: GetEID, configured addresses, SetDefaultDpAddress, GetRAT.
//! - [`iot`]: the SGP.32 IoT functions (eIM configuration, eUICC packages,
//!   GetCerts, IoT memory reset); [`switching`]: ProfileRollback, the
//!   Fallback Mechanism and ImmediateEnable.
//!
//! Malformed commands are answered with `6A80`, unknown ones with `6A88`;
//! a well-formed command that fails is answered with its response's error
//! code (see [`crate::codes`]).

mod auth;
mod config;
mod crl;
mod download;
mod install;
mod iot;
mod notifications;
mod profiles;
mod switching;

use ferrosim_ids::Timestamp;
use std::sync::Arc;

use ferrosim_asn1::rasn::{Decode, Encode};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der};
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_ids::TransactionId;
use ferrosim_pki::{KeyId, VerifiedDp};
use rand::CryptoRng;
use tracing::debug;

use crate::apdu::StatusWord;
use crate::bpp::{self, BppLoader};
use crate::identity::EuiccIdentity;
use crate::state::EuiccState;

pub(crate) use auth::SVN;
pub(crate) use notifications::pending_notification;

/// What the ISD-R answers to one ES10 command.
#[derive(Debug)]
pub(crate) enum Es10Reply {
    /// Response data, then `9000` (or `61xx` chaining).
    Data(Vec<u8>),
    /// `9000` without data (an intermediate BPP piece).
    Empty,
    /// A status word alone (malformed or unexpected command).
    Status(StatusWord),
}

/// The ISD-R with its identity, persistent state and RSP session.
///
/// The session is boxed: between downloads (nearly always, on a device) it
/// costs one pointer.
#[derive(Debug)]
pub(crate) struct Isdr {
    identity: EuiccIdentity,
    state: EuiccState,
    session: Option<Box<Session>>,
    /// The one-time key pair of the last PrepareDownload, kept until an
    /// installation ends so a Bound Profile Package already bound to it
    /// (`bppEuiccOtpk`) can still be loaded in a later session.
    retained_key: Option<Arc<OneTimeKeyPair>>,
    revision: u64,
}

/// An RSP session, from GetEuiccChallenge to the end of a download.
#[derive(Debug)]
pub(crate) struct Session {
    /// Our challenge (16 bytes).
    challenge: [u8; 16],
    /// Set by a successful AuthenticateServer.
    server: Option<ServerSession>,
    /// Set by a successful PrepareDownload.
    download: Option<DownloadSession>,
    /// Set while a Bound Profile Package is being loaded.
    loader: Option<BppLoader>,
}

/// What AuthenticateServer established.
#[derive(Debug, Clone)]
pub(crate) struct ServerSession {
    transaction_id: TransactionId,
    server_address: String,
    /// The SM-DP+ OID of CERT.DPauth, dotted.
    smdp_oid: String,
    ci_key_id: KeyId,
    /// euiccSignature1 as sent (`5F37` TLV): smdpSignature2 covers it.
    euicc_signature1: Vec<u8>,
}

/// What PrepareDownload established.
pub(crate) struct DownloadSession {
    /// CERT.DPpb as verified (shared with the other eUICCs of the EUM).
    dppb: Arc<VerifiedDp>,
    one_time_key: Arc<OneTimeKeyPair>,
}

impl std::fmt::Debug for DownloadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadSession").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BppLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BppLoader").finish_non_exhaustive()
    }
}

impl Isdr {
    pub(crate) fn new(identity: EuiccIdentity, state: EuiccState) -> Self {
        Self {
            identity,
            state,
            session: None,
            retained_key: None,
            revision: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.session = None;
    }

    pub(crate) fn state(&self) -> &EuiccState {
        &self.state
    }

    pub(crate) fn identity(&self) -> &EuiccIdentity {
        &self.identity
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Handles one complete ES10 command; `rng` gives the challenge and the
    /// one-time key.
    pub(crate) fn handle(
        &mut self,
        command: &[u8],
        now: Timestamp,
        rng: &mut dyn CryptoRng,
    ) -> Es10Reply {
        let Ok((tag, _, _)) = ferrosim_asn1::tlv::read_header(command) else {
            return Es10Reply::Status(StatusWord::WRONG_DATA);
        };
        let reply = if bpp::is_bpp_piece(tag) {
            self.load_bound_profile_package(tag, command, now)
        } else {
            match Tlv::parse_exact(command) {
                Ok(tlv) => self.dispatch(&tlv, now, rng),
                Err(_) => Es10Reply::Status(StatusWord::WRONG_DATA),
            }
        };
        debug!(
            tag = format_args!("{tag:X}"),
            reply = reply.summary(),
            "ES10"
        );
        reply
    }

    fn dispatch(&mut self, cmd: &Tlv<'_>, now: Timestamp, rng: &mut dyn CryptoRng) -> Es10Reply {
        match cmd.tag {
            0xBF2E => self.get_euicc_challenge(cmd, rng),
            0xBF20 => self.get_euicc_info1(cmd),
            0xBF22 => self.get_euicc_info2(cmd),
            0xBF38 => self.authenticate_server(cmd, now),
            0xBF21 => self.prepare_download(cmd, now, rng),
            0xBF41 => self.cancel_session(cmd),
            0xBF2D => self.get_profiles_info(cmd),
            0xBF31 => self.enable_profile(cmd),
            0xBF32 => self.disable_profile(cmd),
            0xBF33 => self.delete_profile(cmd),
            0xBF29 => self.set_nickname(cmd),
            0xBF34 => self.memory_reset(cmd),
            0xBF28 => self.list_notifications(cmd),
            0xBF2B => self.retrieve_notifications(cmd),
            0xBF30 => self.notification_sent(cmd),
            0xBF3E => self.get_euicc_data(cmd),
            0xBF3C => self.configured_addresses(cmd),
            0xBF3F => self.set_default_dp_address(cmd),
            0xBF43 => self.get_rat(cmd),
            0xBF57 => self.add_initial_eim(cmd),
            0xBF55 => self.get_eim_configuration_data(cmd),
            0xBF51 => self.load_euicc_package(cmd),
            0xBF35 => self.load_crl(cmd),
            0xBF56 => self.get_certs(cmd),
            0xBF64 => self.iot_memory_reset(cmd),
            0xBF58 => self.profile_rollback(cmd),
            0xBF5D => self.execute_fallback(cmd),
            0xBF5E => self.return_from_fallback(cmd),
            0xBF5A => self.immediate_enable(cmd),
            _ => Es10Reply::Status(StatusWord::DATA_NOT_FOUND),
        }
    }

    /// Records that the persistent state changed, and gives back the
    /// capacity its lists grew by (a device keeps a few profiles and
    /// notifications for a long time: spare slots would cost more than they
    /// save).
    fn changed(&mut self) {
        self.revision = self.revision.wrapping_add(1);
        self.state.profiles.shrink_to_fit();
        self.state.notifications.shrink_to_fit();
    }
}

impl Es10Reply {
    /// The DER of `value`, or `6F00` (no precise diagnosis) if it cannot be
    /// encoded, which would be a bug: every value here is built by this crate.
    fn encode<T: Encode>(value: &T) -> Self {
        match der(value) {
            Ok(der) => Self::Data(der),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an ES10 response");
                Self::Status(StatusWord(0x6F00))
            }
        }
    }

    fn summary(&self) -> String {
        match self {
            Self::Data(d) => format!("{} bytes", d.len()),
            Self::Empty => "9000".into(),
            Self::Status(sw) => sw.to_string(),
        }
    }
}

/// The DER of `value` in a vector of its own size.
///
/// The encoder starts every value in a buffer of a kilobyte; the ISD-R's
/// answers and notifications are a few dozen bytes, made for every profile
/// operation. So they are encoded in this thread's buffer, kept between
/// calls, and copied out: one small allocation instead of a kilobyte
/// allocated and given back each time. Same bytes as [`encode_der`].
pub(crate) fn der<T: Encode>(value: &T) -> Result<Vec<u8>, ferrosim_asn1::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => match ferrosim_asn1::rasn::der::encode_buf(value, &mut buffer) {
            Ok(()) => Ok(buffer.as_slice().to_vec()),
            // The error as encode_der words it.
            Err(_) => encode_der(value),
        },
        // Only if encoding a value encoded another (it does not).
        Err(_) => encode_der(value),
    })
}

/// Decodes a whole ES10 command as `T`; `6A80` when it does not decode.
fn decode<T: Decode>(cmd: &Tlv<'_>) -> Result<T, Es10Reply> {
    decode_der(cmd.raw).map_err(|_| Es10Reply::Status(StatusWord::WRONG_DATA))
}

/// Checks that a request without content (`BF2E 00`) is indeed empty.
fn expect_empty(cmd: &Tlv<'_>) -> Result<(), Es10Reply> {
    if cmd.value.is_empty() {
        Ok(())
    } else {
        Err(Es10Reply::Status(StatusWord::WRONG_DATA))
    }
}

/// Unwraps a handler's result: both arms are replies.
fn reply(result: Result<Es10Reply, Es10Reply>) -> Es10Reply {
    result.unwrap_or_else(|e| e)
}
