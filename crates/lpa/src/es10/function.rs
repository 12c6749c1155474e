//! The ES10 functions the LPA's state machines run, each as an
//! [`Es10Function`]: how its request is built and how its answer is read,
//! without any I/O. The blocking driver runs one with [`super::Es10::call`];
//! a state machine sends the request through an [`super::Exchange`] and
//! decodes what comes back with [`Es10Function::decode`].
//!
//! More functions are added here as machines need them (the IPA's
//! LoadEuiccPackage and eIM configuration functions, later): a type, its
//! request, its decoder.

use ferrosim_asn1::tlv::tlv;
use ferrosim_ids::TransactionId;

use super::Es10Error;
use super::commands::{
    AuthenticateServerInput, PrepareDownloadInput, SignedAnswer, integer_bytes, list_or_error,
    result_code, signed_answer,
};
use super::decode::{children, outer, required};
use super::types::{
    CancelSessionReason, EuiccInfo1, InstallationResult, NotificationMetadata, PendingNotification,
};

/// One ES10 function: its name, request and decoded answer.
pub trait Es10Function {
    /// The function's SGP.22 name, for errors and logs.
    const NAME: &'static str;
    /// What a successful answer gives.
    type Output;

    /// The command TLV to send with STORE DATA.
    fn request(&self) -> Result<Vec<u8>, Es10Error>;

    /// Reads the eUICC's answer (the response TLV).
    fn decode(response: Vec<u8>) -> Result<Self::Output, Es10Error>;
}

/// ES10b GetEUICCChallenge (`BF2E`): a fresh 16-byte challenge.
#[derive(Debug, Clone, Copy)]
pub struct GetEuiccChallenge;

impl Es10Function for GetEuiccChallenge {
    const NAME: &'static str = "GetEUICCChallenge";
    type Output = [u8; 16];

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(0xBF2E, &[]))
    }

    fn decode(raw: Vec<u8>) -> Result<[u8; 16], Es10Error> {
        const F: &str = GetEuiccChallenge::NAME;
        let top = outer(F, &raw, 0xBF2E)?;
        let items = children(F, &top)?;
        let challenge = required(F, &items, 0x80, "euiccChallenge")?;
        <[u8; 16]>::try_from(challenge.value)
            .map_err(|_| Es10Error::bad(F, format!("{}-byte challenge", challenge.value.len())))
    }
}

/// ES10b GetEUICCInfo for EUICCInfo1 (`BF20`).
#[derive(Debug, Clone, Copy)]
pub struct GetEuiccInfo1;

impl Es10Function for GetEuiccInfo1 {
    const NAME: &'static str = "GetEUICCInfo1";
    type Output = EuiccInfo1;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(0xBF20, &[]))
    }

    fn decode(raw: Vec<u8>) -> Result<EuiccInfo1, Es10Error> {
        EuiccInfo1::decode(raw)
    }
}

/// ES10b AuthenticateServer (`BF38`) from the parts of initiateAuthentication.
impl Es10Function for AuthenticateServerInput<'_> {
    const NAME: &'static str = "AuthenticateServer";
    type Output = SignedAnswer;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(
            0xBF38,
            &[
                self.server_signed1,
                self.server_signature1,
                self.euicc_ci_pkid_to_be_used,
                self.server_certificate,
                self.ctx_params1,
            ]
            .concat(),
        ))
    }

    fn decode(raw: Vec<u8>) -> Result<SignedAnswer, Es10Error> {
        signed_answer(Self::NAME, raw, 0xBF38, 0xA1)
    }
}

/// ES10b PrepareDownload (`BF21`) from the parts of authenticateClient.
impl Es10Function for PrepareDownloadInput<'_> {
    const NAME: &'static str = "PrepareDownload";
    type Output = SignedAnswer;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        let mut body = [self.smdp_signed2, self.smdp_signature2].concat();
        if let Some(hash) = &self.hash_cc {
            body.extend(tlv(0x04, hash));
        }
        body.extend_from_slice(self.smdp_certificate);
        Ok(tlv(0xBF21, &body))
    }

    fn decode(raw: Vec<u8>) -> Result<SignedAnswer, Es10Error> {
        signed_answer(Self::NAME, raw, 0xBF21, 0xA1)
    }
}

/// ES10b CancelSession (`BF41`): the signed cancellation, as received, for
/// ES9+ cancelSession.
#[derive(Debug, Clone)]
pub struct CancelSession {
    /// The session's transaction id.
    pub transaction_id: TransactionId,
    /// Why the session ends.
    pub reason: CancelSessionReason,
}

impl Es10Function for CancelSession {
    const NAME: &'static str = "CancelSession";
    type Output = Vec<u8>;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(
            0xBF41,
            &[
                tlv(0x80, self.transaction_id.as_bytes()),
                tlv(0x81, &integer_bytes(self.reason.code())),
            ]
            .concat(),
        ))
    }

    fn decode(raw: Vec<u8>) -> Result<Vec<u8>, Es10Error> {
        let answer = signed_answer(Self::NAME, raw, 0xBF41, 0x81)?;
        match answer.error {
            Some(code) => Err(Es10Error::Refused {
                function: Self::NAME,
                code,
            }),
            None => Ok(answer.raw),
        }
    }
}

/// ES10b ListNotification (`BF28`): the headers of pending notifications.
#[derive(Debug, Clone, Copy)]
pub struct ListNotification;

impl Es10Function for ListNotification {
    const NAME: &'static str = "ListNotification";
    type Output = Vec<NotificationMetadata>;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(0xBF28, &[]))
    }

    fn decode(raw: Vec<u8>) -> Result<Vec<NotificationMetadata>, Es10Error> {
        let list = list_or_error(Self::NAME, &raw, 0xBF28)?;
        children(Self::NAME, &list)?
            .iter()
            .filter(|t| t.tag == 0xBF2F)
            .map(|t| NotificationMetadata::decode(Self::NAME, t))
            .collect()
    }
}

/// ES10b RetrieveNotificationsList (`BF2B`): the signed notifications, all
/// of them or the one with a sequence number.
#[derive(Debug, Clone, Copy)]
pub struct RetrieveNotificationsList {
    /// Only the notification with this sequence number.
    pub seq_number: Option<i64>,
}

impl Es10Function for RetrieveNotificationsList {
    const NAME: &'static str = "RetrieveNotificationsList";
    type Output = Vec<PendingNotification>;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        let criteria = self
            .seq_number
            .map(|n| tlv(0xA0, &tlv(0x80, &integer_bytes(n))))
            .unwrap_or_default();
        Ok(tlv(0xBF2B, &criteria))
    }

    fn decode(raw: Vec<u8>) -> Result<Vec<PendingNotification>, Es10Error> {
        let list = match list_or_error(Self::NAME, &raw, 0xBF2B) {
            // "noResultAvailable": nothing pending (for this number).
            Err(Es10Error::Refused { code: 1, .. }) => return Ok(Vec::new()),
            other => other?,
        };
        children(Self::NAME, &list)?
            .iter()
            .map(|t| PendingNotification::decode(Self::NAME, t))
            .collect()
    }
}

/// ES10b RemoveNotificationFromList (`BF30`): drops a delivered notification.
#[derive(Debug, Clone, Copy)]
pub struct RemoveNotificationFromList {
    /// The notification's sequence number.
    pub seq_number: i64,
}

impl Es10Function for RemoveNotificationFromList {
    const NAME: &'static str = "RemoveNotificationFromList";
    type Output = ();

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        Ok(tlv(0xBF30, &tlv(0x80, &integer_bytes(self.seq_number))))
    }

    fn decode(raw: Vec<u8>) -> Result<(), Es10Error> {
        result_code(Self::NAME, &raw, 0xBF30)
    }
}

/// One piece of ES10b LoadBoundProfilePackage (see [`super::bpp`]): an
/// empty answer means "next piece", a `BF37` is the installation result.
#[derive(Debug, Clone, Copy)]
pub struct LoadBoundProfilePackagePiece<'a>(pub &'a [u8]);

impl Es10Function for LoadBoundProfilePackagePiece<'_> {
    const NAME: &'static str = "LoadBoundProfilePackage";
    type Output = Option<InstallationResult>;

    fn request(&self) -> Result<Vec<u8>, Es10Error> {
        // Sent as cut from the package (a piece may be a header alone).
        Ok(self.0.to_vec())
    }

    fn decode(raw: Vec<u8>) -> Result<Option<InstallationResult>, Es10Error> {
        if raw.is_empty() {
            Ok(None)
        } else {
            InstallationResult::decode(raw).map(Some)
        }
    }
}
