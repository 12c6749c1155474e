//! The TLS side: the DPtls certificate and key as a rustls server config with
//! ALPN for HTTP/2 and HTTP/1.1.

use std::sync::Arc;
use std::time::SystemTime;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ServerError;

/// The DPtls certificate chain (leaf first) and its PKCS#8 private key.
#[derive(Clone)]
pub struct TlsIdentity {
    /// DER certificates, leaf first.
    pub cert_chain_der: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub key_pkcs8_der: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.cert_chain_der.len())
            .finish_non_exhaustive()
    }
}

/// The rustls server configuration; with operator client credentials, the
/// server requests (never requires) a client certificate.
pub(crate) fn rustls_config(
    id: &TlsIdentity,
    client_auth: &[crate::client_auth::OperatorClientAuth],
) -> Result<RustlsConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = id
        .cert_chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_pkcs8_der.clone()));
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = if client_auth.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(Arc::new(crate::client_auth::RequestClientCert::new(
            Arc::clone(&provider),
            client_auth,
        )))
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Something about the DPtls certificate that makes devices refuse the
/// connection: found by [`check_tls_certificate`] before serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsCertificateProblem {
    /// The leaf certificate could not be parsed.
    #[error("the DPtls certificate cannot be read: {0}")]
    Unreadable(String),
    /// No certificate at all.
    #[error("no DPtls certificate")]
    Missing,
    /// The certificate is not valid yet.
    #[error("the DPtls certificate is not valid before {0}")]
    NotYetValid(String),
    /// The certificate has expired.
    #[error("the DPtls certificate expired on {0}")]
    Expired(String),
    /// The SM-DP+ address is not one of the certificate's names.
    #[error(
        "the DPtls certificate names {names} but the SM-DP+ address is `{address}`: TLS clients will refuse it"
    )]
    NameMismatch {
        /// The configured SM-DP+ address.
        address: String,
        /// The certificate's subjectAltName DNS names and IP addresses.
        names: String,
    },
    /// The SM-DP+ address is not a valid `host[:port]`.
    #[error("the SM-DP+ address `{0}` is not a valid host[:port]")]
    BadAddress(String),
}

/// Checks the leaf of `identity` the way a device's TLS stack will: valid
/// at `now`, and a subjectAltName (DNS name, `*.` wildcard or IP address)
/// covering the host of `smdp_address`. Returns every problem found.
pub fn check_tls_certificate(
    identity: &TlsIdentity,
    smdp_address: &str,
    now: SystemTime,
) -> Vec<TlsCertificateProblem> {
    use ferrosim_pki::generate::SmdpHost;
    let Some(leaf) = identity.cert_chain_der.first() else {
        return vec![TlsCertificateProblem::Missing];
    };
    let cert = match ferrosim_pki::RspCertificate::from_der(leaf) {
        Ok(c) => c,
        Err(e) => return vec![TlsCertificateProblem::Unreadable(e.to_string())],
    };
    let mut problems = Vec::new();
    if now < cert.not_before() {
        problems.push(TlsCertificateProblem::NotYetValid(
            ferrosim_pki::format_time(cert.not_before()),
        ));
    }
    if now > cert.not_after() {
        problems.push(TlsCertificateProblem::Expired(ferrosim_pki::format_time(
            cert.not_after(),
        )));
    }
    match SmdpHost::parse(smdp_address) {
        Ok(host) if host.is_covered_by(cert.dns_names(), cert.ip_addresses()) => {}
        Ok(_) => {
            let names: Vec<String> = cert
                .dns_names()
                .iter()
                .map(|n| format!("DNS:{n}"))
                .chain(cert.ip_addresses().iter().map(|ip| format!("IP:{ip}")))
                .collect();
            problems.push(TlsCertificateProblem::NameMismatch {
                address: smdp_address.to_owned(),
                names: if names.is_empty() {
                    "no host".to_owned()
                } else {
                    names.join(", ")
                },
            });
        }
        Err(_) => problems.push(TlsCertificateProblem::BadAddress(smdp_address.to_owned())),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn identity(address: &str, not_before: SystemTime, not_after: SystemTime) -> TlsIdentity {
        let pki = ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions {
            euicc_count: 0,
            smdp_address: address.into(),
            not_before,
            not_after,
            ..ferrosim_pki::TestPkiOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        crate::sandbox::tls_identity(&pki)
    }

    #[test]
    fn expired_not_yet_valid_and_other_names_are_problems() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let good = identity("smdp.example.com", now - day, now + day);
        assert!(check_tls_certificate(&good, "smdp.example.com:8443", now).is_empty());
        assert!(check_tls_certificate(&good, "SMDP.example.com", now).is_empty());
        let problems = check_tls_certificate(&good, "127.0.0.1:8443", now);
        assert!(
            matches!(&problems[..], [TlsCertificateProblem::NameMismatch { names, .. }] if names == "DNS:smdp.example.com"),
            "{problems:?}"
        );
        assert!(matches!(
            &check_tls_certificate(&good, "bad host", now)[..],
            [TlsCertificateProblem::BadAddress(_)]
        ));
        let expired = identity("127.0.0.1", now - day * 3, now - day);
        let problems = check_tls_certificate(&expired, "127.0.0.1:1", now);
        assert!(
            matches!(&problems[..], [TlsCertificateProblem::Expired(_)]),
            "{problems:?}"
        );
        let future = identity("localhost", now + day, now + day * 3);
        let problems = check_tls_certificate(&future, "localhost", now);
        assert!(
            matches!(&problems[..], [TlsCertificateProblem::NotYetValid(_)]),
            "{problems:?}"
        );
        let garbage = TlsIdentity {
            cert_chain_der: vec![vec![0x30, 0x03, 0x02, 0x01, 0x00]],
            key_pkcs8_der: Vec::new(),
        };
        assert!(matches!(
            &check_tls_certificate(&garbage, "localhost", now)[..],
            [TlsCertificateProblem::Unreadable(_)]
        ));
        let empty = TlsIdentity {
            cert_chain_der: Vec::new(),
            key_pkcs8_der: Vec::new(),
        };
        assert_eq!(
            check_tls_certificate(&empty, "localhost", now),
            [TlsCertificateProblem::Missing]
        );
    }
}
