//! The TLS side: the DPtls certificate and key as a rustls server config with
//! ALPN for HTTP/2 and HTTP/1.1.

use std::sync::Arc;

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

pub(crate) fn rustls_config(id: &TlsIdentity) -> Result<RustlsConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = id
        .cert_chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_pkcs8_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
