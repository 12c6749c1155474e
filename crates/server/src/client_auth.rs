//! ES2+ mutual TLS: operators authenticated by their TLS client certificate
//! instead of (or besides) a bearer token.
//!
//! Each configured operator has a CA (its client certificates must chain to
//! it) or one pinned certificate. The TLS server *requests* a client
//! certificate but does not require one, so ES9+ devices, which have none,
//! connect as before; the handshake proves that a client holds the key of
//! the certificate it presented ([`RequestClientCert`]). Whether that
//! certificate belongs to an operator is decided per ES2+ request
//! ([`ClientAuthenticator`]), so a refusal is an ES2+ answer naming the
//! reason (unknown CA, expired, another operator's certificate) instead of
//! a TLS alert the operator's client cannot explain.

use std::sync::Arc;

use ferrosim_smdp::ids::OperatorId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// What an operator's client certificates are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAnchor {
    /// A CA certificate (DER): any certificate it issued for client
    /// authentication, valid now, is the operator's.
    Ca(Vec<u8>),
    /// One certificate (DER), valid now: only exactly this one is the operator's.
    Pinned(Vec<u8>),
}

/// One operator's client-certificate credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorClientAuth {
    /// The operator (its `functionRequesterIdentifier`).
    pub operator: OperatorId,
    /// What its certificates are checked against.
    pub anchor: ClientAnchor,
}

/// Why client-certificate authentication could not be configured.
#[derive(Debug, thiserror::Error)]
#[error("client certificate credential of operator {operator}: {reason}")]
pub struct ClientAuthConfigError {
    /// The operator concerned.
    pub operator: String,
    /// What is wrong with its CA or certificate.
    pub reason: String,
}

/// The TLS server's client-certificate policy: ask for one, accept the
/// handshake without one, and accept any certificate whose key the client
/// proves to hold; the ES2+ handler judges the certificate itself.
#[derive(Debug)]
pub(crate) struct RequestClientCert {
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
}

impl RequestClientCert {
    pub(crate) fn new(provider: Arc<CryptoProvider>, credentials: &[OperatorClientAuth]) -> Self {
        // The configured CAs' names, so that clients with several
        // certificates pick the right one.
        let hints = credentials
            .iter()
            .filter_map(|c| match &c.anchor {
                ClientAnchor::Ca(der) => subject_der(der).map(DistinguishedName::from),
                ClientAnchor::Pinned(_) => None,
            })
            .collect();
        Self { provider, hints }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Judged per request by ClientAuthenticator; nothing is trusted
        // because of the handshake alone.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

enum Check {
    Ca(Arc<dyn ClientCertVerifier>),
    Pinned(Vec<u8>, Arc<dyn ClientCertVerifier>),
}

/// Maps a presented client certificate chain to an operator.
pub(crate) struct ClientAuthenticator {
    entries: Vec<(OperatorId, Check)>,
}

impl std::fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("credentials", &self.entries.len())
            .finish()
    }
}

impl ClientAuthenticator {
    pub(crate) fn new(
        provider: &Arc<CryptoProvider>,
        credentials: &[OperatorClientAuth],
    ) -> Result<Self, ClientAuthConfigError> {
        let mut entries = Vec::with_capacity(credentials.len());
        for c in credentials {
            let fail = |reason: String| ClientAuthConfigError {
                operator: c.operator.to_string(),
                reason,
            };
            // A pinned certificate is checked (validity, client use) with
            // itself as the trust anchor of a one-certificate path.
            let der = match &c.anchor {
                ClientAnchor::Ca(der) | ClientAnchor::Pinned(der) => der,
            };
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| fail(format!("not a usable certificate: {e}")))?;
            let verifier: Arc<dyn ClientCertVerifier> =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| fail(e.to_string()))?;
            let check = match &c.anchor {
                ClientAnchor::Ca(_) => Check::Ca(verifier),
                ClientAnchor::Pinned(der) => Check::Pinned(der.clone(), verifier),
            };
            entries.push((c.operator.clone(), check));
        }
        Ok(Self { entries })
    }

    /// The operator `chain` (leaf first, as presented) authenticates as
    /// `requester` at `now`, or why not (a message for the ES2+ answer).
    pub(crate) fn authenticate(
        &self,
        chain: &[Vec<u8>],
        requester: &str,
        now: UnixTime,
    ) -> Result<OperatorId, String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        let leaf = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let mut owners: Vec<&OperatorId> = Vec::new();
        let mut problem: Option<String> = None;
        for (operator, check) in &self.entries {
            let verdict = match check {
                Check::Ca(verifier) => verifier
                    .verify_client_cert(&leaf, &intermediates, now)
                    .map(|_| ()),
                Check::Pinned(der, verifier) if der.as_slice() == leaf.as_ref() => {
                    pinned_validity(verifier.as_ref(), &leaf, now)
                }
                Check::Pinned(..) => continue,
            };
            match verdict {
                Ok(()) => owners.push(operator),
                Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {}
                Err(e) => {
                    problem.get_or_insert_with(|| describe(&e));
                }
            }
        }
        if let Some(id) = owners.iter().find(|id| id.as_str() == requester) {
            return Ok((*id).clone());
        }
        if let Some(owner) = owners.first() {
            return Err(format!(
                "the client certificate is operator {owner}'s, not {requester}'s"
            ));
        }
        Err(problem.unwrap_or_else(|| {
            "the client certificate is not issued by the CA of any operator nor pinned for one"
                .into()
        }))
    }
}

/// A pinned certificate: its validity period and client use, checked by
/// verifying it as a path that ends at itself.
fn pinned_validity(
    verifier: &dyn ClientCertVerifier,
    leaf: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    match verifier.verify_client_cert(leaf, &[], now) {
        // A certificate not issued by itself does not chain to itself as an
        // anchor; its dates still count, and webpki checks them before the
        // issuer, so an expired one never gets here.
        Ok(_) | Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the client certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "the client certificate is not valid yet".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::Revoked) => {
            "the client certificate is revoked".into()
        }
        other => format!("the client certificate is refused: {other}"),
    }
}

/// The DER of a certificate's subject name (for the CA hints), if it parses.
fn subject_der(cert_der: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    cert.tbs_certificate().subject().to_der().ok()
}
