//! ES9+ download sessions, kept in the store between the steps.
//!
//! Any SM-DP+ instance can serve any step: everything a later step needs is
//! in the [`SessionRecord`], nothing is held in memory. What a session holds
//! depends on where it is ([`SessionPhase`]): the two challenges and the
//! agreed CI until the eUICC is authenticated, then the [`Binding`] of the
//! authenticated eUICC to an order. Transitions are methods that refuse to
//! leave a phase they do not start from ([`WrongPhase`]).

use std::sync::{Arc, OnceLock};

use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_ids::CiKeyId;
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;

use crate::ids::TransactionId;
use crate::time::Timestamp;

/// Where a download session is, without the data of the phase (the name the
/// stores keep).
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

/// What `authenticateClient` established and every later step relies on:
/// who the eUICC is and which order it downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The authenticated eUICC.
    pub eid: Eid,
    /// Its public key (SEC1), which verifies its later signatures.
    pub euicc_public_key: EuiccPublicKey,
    /// The profile whose order is bound to the session.
    pub iccid: Iccid,
    /// Whether the order needs a confirmation code.
    pub cc_required: bool,
    /// smdpSignature2 as sent (the whole 5F37 TLV): euiccSignature2 covers it.
    pub smdp_signature2: Vec<u8>,
    /// The eUICC's one-time key (otPK.EUICC.ECKA) the last package of the
    /// session was bound to; `None` until a package is issued. It tells
    /// which sessions were handed a package, and a retry may bind to it again.
    pub euicc_otpk: Option<Vec<u8>>,
}

/// The authenticated eUICC's public key: the SEC1 bytes the stores keep,
/// and the key parsed from them once, on first use, kept with the bytes
/// while the record stays in memory (a store that keeps only the bytes gets
/// a key parsed again on the first verification after loading).
///
/// Clones share the bytes and the parsed key; equality is that of the bytes.
#[derive(Clone)]
pub struct EuiccPublicKey(Arc<ParsedOnce>);

struct ParsedOnce {
    sec1: Vec<u8>,
    parsed: OnceLock<VerifyingKey>,
}

impl EuiccPublicKey {
    /// A key already parsed (from the verified eUICC certificate).
    pub fn parsed(key: VerifyingKey) -> Self {
        Self(Arc::new(ParsedOnce {
            sec1: key.sec1().to_vec(),
            parsed: OnceLock::from(key),
        }))
    }

    /// The SEC1 bytes as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.sec1
    }

    /// The key, parsed from the bytes on the first call (an invalid point
    /// is an error on every call).
    pub fn verifying_key(&self) -> Result<&VerifyingKey, ferrosim_crypto::Error> {
        if let Some(key) = self.0.parsed.get() {
            return Ok(key);
        }
        let key = VerifyingKey::from_sec1(&self.0.sec1)?;
        Ok(self.0.parsed.get_or_init(|| key))
    }
}

impl From<Vec<u8>> for EuiccPublicKey {
    /// The bytes as stored; parsed when first used.
    fn from(sec1: Vec<u8>) -> Self {
        Self(Arc::new(ParsedOnce {
            sec1,
            parsed: OnceLock::new(),
        }))
    }
}

impl PartialEq for EuiccPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EuiccPublicKey {}

impl std::fmt::Debug for EuiccPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_bytes().fmt(f)
    }
}

/// Where a session is, with the data that phase needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPhase {
    /// `initiateAuthentication` answered; waiting for `authenticateClient`.
    Initiated {
        /// The eUICC's challenge, echoed in serverSigned1.
        euicc_challenge: [u8; 16],
        /// Our challenge, which the eUICC must sign.
        server_challenge: [u8; 16],
        /// The CI key id agreed with the eUICC: its chain must end there.
        ci_key_id: CiKeyId,
    },
    /// The eUICC is authenticated and an order is bound.
    Authenticated(Binding),
    /// The Bound Profile Package was handed out (a repeated request of the
    /// same session gets a new one).
    PackageIssued(Binding),
    /// The installation result arrived; repeats are still verified with the binding.
    Completed(Binding),
    /// Cancelled by the device or ended by the eUICC's refusal; the binding,
    /// if there was one, still verifies a late installation result.
    Cancelled(Option<Binding>),
}

/// A transition was asked of a session in a phase it does not start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session is {found:?}, not where `{action}` starts")]
pub struct WrongPhase {
    /// The session's state.
    pub found: SessionState,
    /// What was attempted.
    pub action: &'static str,
}

/// One ES9+ session, from `initiateAuthentication` to the installation result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub transaction_id: TransactionId,
    /// When it started.
    pub created_at: Timestamp,
    /// After this time the session is unknown to ES9+.
    pub expires_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Where it is, with that phase's data.
    pub phase: SessionPhase,
}

impl SessionRecord {
    /// A session just opened by `initiateAuthentication` at `now`: the two
    /// challenges and the agreed CI key id, nothing learnt about the eUICC
    /// yet, usable until `expires_at`.
    pub fn initiated(
        transaction_id: TransactionId,
        euicc_challenge: [u8; 16],
        server_challenge: [u8; 16],
        ci_key_id: CiKeyId,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            transaction_id,
            created_at: now,
            expires_at,
            updated_at: now,
            phase: SessionPhase::Initiated {
                euicc_challenge,
                server_challenge,
                ci_key_id,
            },
        }
    }

    /// The phase's name.
    pub fn state(&self) -> SessionState {
        match self.phase {
            SessionPhase::Initiated { .. } => SessionState::Initiated,
            SessionPhase::Authenticated(_) => SessionState::Authenticated,
            SessionPhase::PackageIssued(_) => SessionState::PackageIssued,
            SessionPhase::Completed(_) => SessionState::Completed,
            SessionPhase::Cancelled(_) => SessionState::Cancelled,
        }
    }

    /// The eUICC and order bound to the session, once authenticated.
    pub fn binding(&self) -> Option<&Binding> {
        match &self.phase {
            SessionPhase::Initiated { .. } | SessionPhase::Cancelled(None) => None,
            SessionPhase::Authenticated(b)
            | SessionPhase::PackageIssued(b)
            | SessionPhase::Completed(b)
            | SessionPhase::Cancelled(Some(b)) => Some(b),
        }
    }

    /// Whether the session is still usable at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now <= self.expires_at && self.state() != SessionState::Cancelled
    }

    /// `authenticateClient` succeeded: the eUICC and its order are bound.
    pub fn authenticate(&mut self, binding: Binding, now: Timestamp) -> Result<(), WrongPhase> {
        self.require(&[SessionState::Initiated], "authenticateClient")?;
        self.phase = SessionPhase::Authenticated(binding);
        self.updated_at = now;
        Ok(())
    }

    /// `getBoundProfilePackage` handed out a package bound to `euicc_otpk`
    /// (again, for a repeat).
    pub fn issue_package(&mut self, euicc_otpk: Vec<u8>, now: Timestamp) -> Result<(), WrongPhase> {
        self.move_bound(
            &[SessionState::Authenticated, SessionState::PackageIssued],
            "getBoundProfilePackage",
            SessionPhase::PackageIssued,
            now,
        )?;
        if let SessionPhase::PackageIssued(b) = &mut self.phase {
            b.euicc_otpk = Some(euicc_otpk);
        }
        Ok(())
    }

    /// The installation result arrived (a repeat keeps the session completed).
    pub fn complete(&mut self, now: Timestamp) -> Result<(), WrongPhase> {
        let from = [
            SessionState::Authenticated,
            SessionState::PackageIssued,
            SessionState::Completed,
            SessionState::Cancelled,
        ];
        self.move_bound(&from, "handleNotification", SessionPhase::Completed, now)
    }

    /// The device cancelled, or the eUICC refused the binding: the session
    /// ends, keeping its binding for a late installation result.
    pub fn cancel(&mut self, now: Timestamp) {
        let phase = std::mem::replace(&mut self.phase, SessionPhase::Cancelled(None));
        self.phase = SessionPhase::Cancelled(match phase {
            SessionPhase::Initiated { .. } => None,
            SessionPhase::Cancelled(b) => b,
            SessionPhase::Authenticated(b)
            | SessionPhase::PackageIssued(b)
            | SessionPhase::Completed(b) => Some(b),
        });
        self.updated_at = now;
    }

    fn move_bound(
        &mut self,
        from: &[SessionState],
        action: &'static str,
        to: fn(Binding) -> SessionPhase,
        now: Timestamp,
    ) -> Result<(), WrongPhase> {
        self.require(from, action)?;
        let found = self.state();
        match std::mem::replace(&mut self.phase, SessionPhase::Cancelled(None)) {
            SessionPhase::Authenticated(b)
            | SessionPhase::PackageIssued(b)
            | SessionPhase::Completed(b)
            | SessionPhase::Cancelled(Some(b)) => {
                self.phase = to(b);
                self.updated_at = now;
                Ok(())
            }
            unbound => {
                self.phase = unbound;
                Err(WrongPhase { found, action })
            }
        }
    }

    fn require(&self, from: &[SessionState], action: &'static str) -> Result<(), WrongPhase> {
        let found = self.state();
        if from.contains(&found) {
            Ok(())
        } else {
            Err(WrongPhase { found, action })
        }
    }
}
