//! ES9+ download sessions, kept in the store between the steps.
//!
//! Any SM-DP+ instance can serve any step: everything a later step needs is
//! in the [`SessionRecord`], nothing is held in memory.

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;

use crate::ids::TransactionId;
use crate::time::Timestamp;

/// Where a download session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// `initiateAuthentication` answered; waiting for `authenticateClient`.
    Initiated,
    /// The eUICC is authenticated and an order is bound.
    Authenticated,
    /// The Bound Profile Package was handed out.
    PackageIssued,
    /// The installation result arrived (success or failure).
    Completed,
    /// Cancelled by the device or ended by an error.
    Cancelled,
}

impl SessionState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Authenticated => "authenticated",
            Self::PackageIssued => "package_issued",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a name written by [`SessionState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Initiated,
            Self::Authenticated,
            Self::PackageIssued,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One ES9+ session, from `initiateAuthentication` to the installation result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub transaction_id: TransactionId,
    /// Where the session is.
    pub state: SessionState,
    /// When it started.
    pub created_at: Timestamp,
    /// After this time the session is unknown to ES9+.
    pub expires_at: Timestamp,
    /// The eUICC's challenge (16 bytes), echoed in serverSigned1.
    pub euicc_challenge: Vec<u8>,
    /// Our challenge (16 bytes), which the eUICC must sign.
    pub server_challenge: Vec<u8>,
    /// The CI key id agreed with the eUICC.
    pub ci_key_id: Vec<u8>,
    /// EID, once the eUICC is authenticated.
    pub eid: Option<Eid>,
    /// The eUICC's public key (SEC1), once authenticated.
    pub euicc_public_key: Option<Vec<u8>>,
    /// The profile bound to the session.
    pub iccid: Option<Iccid>,
    /// Whether the order needs a confirmation code.
    pub cc_required: bool,
    /// smdpSignature2 as sent (the whole 5F37 TLV): euiccSignature2 covers it.
    pub smdp_signature2: Option<Vec<u8>>,
    /// The eUICC's one-time public key, once a package was built for it.
    pub euicc_otpk: Option<Vec<u8>>,
    /// Last change.
    pub updated_at: Timestamp,
}

impl SessionRecord {
    /// A session just opened by `initiateAuthentication` at `now`: the two
    /// challenges and the agreed CI key id, nothing learnt about the eUICC
    /// yet, usable until `expires_at`.
    pub fn initiated(
        transaction_id: TransactionId,
        euicc_challenge: Vec<u8>,
        server_challenge: Vec<u8>,
        ci_key_id: Vec<u8>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            transaction_id,
            state: SessionState::Initiated,
            created_at: now,
            expires_at,
            euicc_challenge,
            server_challenge,
            ci_key_id,
            eid: None,
            euicc_public_key: None,
            iccid: None,
            cc_required: false,
            smdp_signature2: None,
            euicc_otpk: None,
            updated_at: now,
        }
    }

    /// Whether the session is still usable at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now <= self.expires_at && !matches!(self.state, SessionState::Cancelled)
    }
}
