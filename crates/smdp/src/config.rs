//! What an SM-DP+ instance is: its address, its certificates and keys, the
//! CIs it trusts, and the limits it applies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferrosim_crypto::key::KeySource;
use ferrosim_pki::{Oid, RspCertificate, TrustStore};
use thiserror::Error;

use crate::order::OrderPolicy;

/// A certificate and the key that goes with it (in a file or in a token).
#[derive(Clone)]
pub struct Credential {
    /// The certificate, parsed once.
    pub certificate: RspCertificate,
    /// Its private key.
    pub key: Arc<dyn KeySource>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("role", &self.certificate.role())
            .finish_non_exhaustive()
    }
}

/// A configuration that cannot work.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The DPauth or DPpb certificate has no SM-DP+ OID (subjectAltName registeredID).
    #[error("the {0} certificate carries no SM-DP+ OID (subjectAltName registeredID)")]
    NoSmdpOid(&'static str),
    /// The DPauth and DPpb certificates disagree on the SM-DP+ OID.
    #[error("DPauth and DPpb certificates carry different SM-DP+ OIDs")]
    OidMismatch,
    /// A certificate has no authorityKeyIdentifier (so no CI key id).
    #[error("the {0} certificate has no authorityKeyIdentifier")]
    NoAuthorityKeyId(&'static str),
    /// A key does not match its certificate.
    #[error("the {0} private key does not match its certificate")]
    KeyMismatch(&'static str),
    /// The SM-DP+ address is empty.
    #[error("the SM-DP+ address must not be empty")]
    EmptyAddress,
}

/// Default of [`SmdpConfig::max_pending_sessions`].
pub const DEFAULT_MAX_PENDING_SESSIONS: u64 = 10_000;

/// The configuration of the SM-DP+ logic.
#[derive(Debug, Clone)]
pub struct SmdpConfig {
    /// This SM-DP+'s address as devices use it (FQDN with an optional port),
    /// compared case-insensitively.
    pub address: String,
    /// CERT.DPauth.SIG and its key: signs serverSigned1.
    pub dpauth: Credential,
    /// CERT.DPpb.SIG and its key: signs smdpSigned2 and the BPP.
    pub dppb: Credential,
    /// The CIs whose eUICCs we accept.
    pub trust: TrustStore,
    /// How long an ES9+ session may last.
    pub session_ttl: Duration,
    /// Most sessions waiting for `authenticateClient` at once (opened by
    /// unauthenticated `initiateAuthentication` calls); more are refused
    /// with 8.8/4.2 until some authenticate, end or expire.
    pub max_pending_sessions: u64,
    /// Order limits.
    pub policy: OrderPolicy,
    /// HostId used in the BPP's control reference template.
    pub host_id: Vec<u8>,
    /// The SM-DP+ OID (from the DPauth certificate).
    oid: Oid,
    /// Key id of the CI that issued our DPauth certificate.
    dpauth_ci_key_id: Vec<u8>,
}

impl SmdpConfig {
    /// Checks and assembles a configuration.
    pub fn new(
        address: String,
        dpauth: Credential,
        dppb: Credential,
        trust: TrustStore,
    ) -> Result<Self, ConfigError> {
        if address.trim().is_empty() {
            return Err(ConfigError::EmptyAddress);
        }
        let oid = dpauth
            .certificate
            .registered_ids()
            .first()
            .ok_or(ConfigError::NoSmdpOid("DPauth"))?
            .clone();
        let pb_oid = dppb
            .certificate
            .registered_ids()
            .first()
            .ok_or(ConfigError::NoSmdpOid("DPpb"))?;
        if *pb_oid != oid {
            return Err(ConfigError::OidMismatch);
        }
        if dpauth.key.public_key_sec1() != dpauth.certificate.public_key_sec1() {
            return Err(ConfigError::KeyMismatch("DPauth"));
        }
        if dppb.key.public_key_sec1() != dppb.certificate.public_key_sec1() {
            return Err(ConfigError::KeyMismatch("DPpb"));
        }
        let dpauth_ci_key_id = dpauth
            .certificate
            .authority_key_id()
            .ok_or(ConfigError::NoAuthorityKeyId("DPauth"))?
            .as_bytes()
            .to_vec();
        Ok(Self {
            address: address.trim().to_owned(),
            dpauth,
            dppb,
            trust,
            session_ttl: Duration::from_secs(600),
            max_pending_sessions: DEFAULT_MAX_PENDING_SESSIONS,
            policy: OrderPolicy::default(),
            host_id: b"ferrosim".to_vec(),
            oid,
            dpauth_ci_key_id,
        })
    }

    /// The SM-DP+ OID.
    pub fn oid(&self) -> &Oid {
        &self.oid
    }

    /// Whether a received OBJECT IDENTIFIER is this SM-DP+'s OID.
    pub fn is_our_oid(&self, oid: &ferrosim_asn1::rasn::types::ObjectIdentifier) -> bool {
        // Arc by arc, without writing either out (every notification asks).
        let ours = self.oid.arcs();
        ours.len() == oid.len()
            && ours
                .iter()
                .zip(oid.iter())
                .all(|(a, b)| *a == u64::from(*b))
    }

    /// Key id of the CI above our DPauth certificate.
    pub fn dpauth_ci_key_id(&self) -> &[u8] {
        &self.dpauth_ci_key_id
    }

    /// Whether `address` (as a device sent it) names this SM-DP+.
    pub fn is_our_address(&self, address: &str) -> bool {
        address.trim().eq_ignore_ascii_case(&self.address)
    }
}
