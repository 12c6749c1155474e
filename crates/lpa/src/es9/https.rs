//! ES9+ over HTTPS, as real LPAs speak it.
//!
//! Every call is `POST https://{address}/gsma/rsp2/es9plus/{function}` with
//! `Content-Type: application/json`, `X-Admin-Protocol: gsma/rsp/v2.5.0` and
//! `User-Agent: gsma-rsp-lpad`. Answers are HTTP 200 with a JSON body whose
//! `header.functionExecutionStatus` says whether the function executed;
//! `handleNotification` is answered with 204 and no body.
//!
//! TLS: the SM-DP+'s TLS certificate (DPtls) chains to a GSMA CI, not to a
//! web CA, so the client trusts exactly the CI or CA certificates it is
//! given ([`TlsTrust::Roots`]). [`TlsTrust::InsecureAcceptAnyCertificate`]
//! skips certificate validation (handshake signatures are still checked): it
//! exists for tests against throw-away servers and must be asked for
//! explicitly. One client keeps a pool of kept-alive connections per SM-DP+.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferrosim_asn1::json::ADMIN_PROTOCOL;
use reqwest::header::{HeaderName, HeaderValue};
use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;

pub use super::decode_answer;
use super::{Es9Client, Es9ClientError, Es9Function};
use crate::activation_code::SmdpAddress;

/// `User-Agent` of GSMA LPAs; some SM-DP+ servers expect it.
pub const USER_AGENT: &str = "gsma-rsp-lpad";
/// The `X-Admin-Protocol` header's name, lower case as `HeaderName` wants it.
const ADMIN_PROTOCOL_HEADER: &str = "x-admin-protocol";
/// Largest answer body accepted (a bound profile package is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Which TLS server certificates the client accepts.
#[derive(Debug, Clone)]
pub enum TlsTrust {
    /// Certificates chaining to one of these roots (CI or CA certificates, DER).
    Roots(Vec<CertificateDer<'static>>),
    /// Any certificate. For tests only: the connection is encrypted but the
    /// server is not authenticated.
    InsecureAcceptAnyCertificate,
}

impl TlsTrust {
    /// Reads trusted certificates from PEM (any number of `CERTIFICATE`
    /// blocks) or DER bytes.
    pub fn roots_from_bytes(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Es9ClientError> {
        let text = String::from_utf8_lossy(bytes);
        if text.contains("-----BEGIN") {
            let certs = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Es9ClientError::Setup(format!("unreadable PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Es9ClientError::Setup(
                    "no CERTIFICATE block in the PEM data".into(),
                ));
            }
            Ok(certs)
        } else if bytes.first() == Some(&0x30) {
            Ok(vec![CertificateDer::from(bytes.to_vec())])
        } else {
            Err(Es9ClientError::Setup(
                "neither a PEM nor a DER certificate".into(),
            ))
        }
    }

    /// Reads trusted certificates from PEM or DER files.
    pub fn roots_from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, Es9ClientError> {
        let mut roots = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let bytes = std::fs::read(path).map_err(|e| {
                Es9ClientError::Setup(format!("cannot read {}: {e}", path.display()))
            })?;
            let certs = Self::roots_from_bytes(&bytes).map_err(|e| match e {
                Es9ClientError::Setup(reason) => {
                    Es9ClientError::Setup(format!("{}: {reason}", path.display()))
                }
                other => other,
            })?;
            roots.extend(certs);
        }
        Ok(Self::Roots(roots))
    }
}

/// Settings of an [`HttpsEs9Client`].
#[derive(Debug, Clone)]
pub struct HttpsOptions {
    /// Which server certificates to accept.
    pub trust: TlsTrust,
    /// Limit for a whole call (connect, send, receive).
    pub timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
}

impl HttpsOptions {
    /// Options with this trust and timeouts of 60 s per call, 10 s per connection.
    pub fn new(trust: TlsTrust) -> Self {
        Self {
            trust,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// An ES9+ client over HTTPS. Cheap to clone (connections are shared).
#[derive(Debug, Clone)]
pub struct HttpsEs9Client {
    http: reqwest::Client,
    /// The URLs called so far, parsed: per SM-DP+ address, per function.
    urls: Arc<Mutex<HashMap<String, HashMap<&'static str, reqwest::Url>>>>,
}

/// Most SM-DP+ addresses whose URLs are kept (an LPA talks to a few).
const CACHED_ADDRESSES: usize = 64;

impl HttpsEs9Client {
    /// Builds the client; refuses an empty set of roots.
    pub fn new(options: &HttpsOptions) -> Result<Self, Es9ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Es9ClientError::Setup(e.to_string()))?;
        let mut tls = match &options.trust {
            TlsTrust::Roots(roots) => {
                if roots.is_empty() {
                    return Err(Es9ClientError::Setup(
                        "no trusted CI or CA certificate given (and insecure mode not requested)"
                            .into(),
                    ));
                }
                let mut store = RootCertStore::empty();
                for root in roots {
                    store.add(root.clone()).map_err(|e| {
                        Es9ClientError::Setup(format!("unusable trusted certificate: {e}"))
                    })?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
            TlsTrust::InsecureAcceptAnyCertificate => {
                tracing::warn!("ES9+ TLS server certificates are NOT verified (insecure mode)");
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                    .with_no_client_auth()
            }
        };
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| Es9ClientError::Setup(error_chain(&e)))?;
        Ok(Self {
            http,
            urls: Arc::default(),
        })
    }

    /// `https://{address}/gsma/rsp2/es9plus/{function}`, parsed once per
    /// address and function rather than at every call; `Err` with the
    /// text when it does not parse (the request then fails as before).
    fn url(&self, address: &SmdpAddress, function: &'static str) -> Result<reqwest::Url, String> {
        let mut urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(url) = urls.get(address.as_str()).and_then(|f| f.get(function)) {
            return Ok(url.clone());
        }
        let text = format!("https://{}/gsma/rsp2/es9plus/{function}", address.as_str());
        let url = reqwest::Url::parse(&text).map_err(|_| text)?;
        if urls.len() >= CACHED_ADDRESSES && !urls.contains_key(address.as_str()) {
            urls.clear();
        }
        urls.entry(address.as_str().to_owned())
            .or_default()
            .insert(function, url.clone());
        Ok(url)
    }

    /// POSTs `request` and returns the HTTP status and the body.
    async fn post<Req: Serialize>(
        &self,
        address: &SmdpAddress,
        function: &'static str,
        request: &Req,
    ) -> Result<(u16, Vec<u8>), Es9ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| Es9ClientError::BadResponse {
            function,
            reason: format!("cannot encode the request: {e}"),
        })?;
        let url = self.url(address, function);
        let failure = |e: reqwest::Error| {
            if e.is_timeout() {
                Es9ClientError::Timeout {
                    function,
                    address: address.to_string(),
                }
            } else {
                Es9ClientError::Unreachable {
                    function,
                    address: address.to_string(),
                    reason: error_chain(&e),
                }
            }
        };
        let request = match url {
            Ok(url) => self.http.post(url),
            Err(text) => self.http.post(text),
        };
        let mut response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                HeaderName::from_static(ADMIN_PROTOCOL_HEADER),
                HeaderValue::from_static(ADMIN_PROTOCOL),
            )
            .body(body)
            .send()
            .await
            .map_err(failure)?;
        let status = response.status().as_u16();
        // Sized once from the announced length (a bound profile package
        // arrives in several frames), instead of growing chunk by chunk.
        let announced = response
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(MAX_BODY);
        let mut received = Vec::with_capacity(announced);
        while let Some(chunk) = response.chunk().await.map_err(failure)? {
            if received.len() + chunk.len() > MAX_BODY {
                return Err(Es9ClientError::BadResponse {
                    function,
                    reason: format!("answer larger than {MAX_BODY} bytes"),
                });
            }
            received.extend_from_slice(&chunk);
        }
        tracing::debug!(function, status, bytes = received.len(), "ES9+ answer");
        Ok((status, received))
    }
}

impl Es9Client for HttpsEs9Client {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let (status, body) = self.post(address, F::NAME, request).await?;
        F::decode(status, &body)
    }
}

/// `error: cause: cause...` of an error and its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The insecure verifier: any certificate is accepted, but handshake
/// signatures are verified with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosim_asn1::json::es9::{CancelSessionResponse, InitiateAuthenticationResponse};

    #[test]
    fn failed_header_is_typed() {
        let body = br#"{"header":{"functionExecutionStatus":{"status":"Failed",
            "statusCodeData":{"subjectCode":"8.2.7","reasonCode":"3.8","message":"Refused"}}}}"#;
        let e = decode_answer::<CancelSessionResponse>("cancelSession", 200, body).unwrap_err();
        assert_eq!(e.status_codes(), Some(("8.2.7", "3.8")));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("8.2.7"));
        // Also on a non-200 status.
        let e = decode_answer::<CancelSessionResponse>("cancelSession", 500, body).unwrap_err();
        assert_eq!(e.status_codes(), Some(("8.2.7", "3.8")));
    }

    #[test]
    fn other_answers() {
        let ok = br#"{"header":{"functionExecutionStatus":{"status":"Executed-Success"}},"transactionId":"01"}"#;
        let r: CancelSessionResponse = decode_answer("cancelSession", 200, ok).unwrap();
        assert_eq!(r.transaction_id.map(|t| t.to_hex()).as_deref(), Some("01"));
        let e = decode_answer::<CancelSessionResponse>("cancelSession", 503, b"busy").unwrap_err();
        assert!(matches!(e, Es9ClientError::HttpStatus { status: 503, .. }));
        assert!(e.is_transient());
        let e =
            decode_answer::<CancelSessionResponse>("cancelSession", 200, b"<html>").unwrap_err();
        assert!(matches!(e, Es9ClientError::BadResponse { .. }));
        let e = decode_answer::<CancelSessionResponse>("cancelSession", 200, b"{}").unwrap_err();
        assert!(matches!(e, Es9ClientError::BadResponse { .. }));
        let e = decode_answer::<InitiateAuthenticationResponse>("initiateAuthentication", 200, ok)
            .unwrap_err();
        assert!(matches!(e, Es9ClientError::BadResponse { .. }));
    }

    #[test]
    fn urls_are_parsed_once_per_address_and_function() {
        let client =
            HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::InsecureAcceptAnyCertificate))
                .unwrap();
        let a = SmdpAddress::new("smdp.example.com").unwrap();
        let b = SmdpAddress::new("localhost:8443").unwrap();
        let url = client.url(&a, "initiateAuthentication").unwrap();
        assert_eq!(
            url.as_str(),
            "https://smdp.example.com/gsma/rsp2/es9plus/initiateAuthentication"
        );
        assert_eq!(client.url(&a, "initiateAuthentication").unwrap(), url);
        assert_eq!(
            client.url(&b, "handleNotification").unwrap().as_str(),
            "https://localhost:8443/gsma/rsp2/es9plus/handleNotification"
        );
        let urls = client.urls.lock().unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls["smdp.example.com"].len(), 1);
    }

    #[test]
    fn functions_read_executed_answers_in_one_pass_and_the_rest_as_before() {
        use crate::es9::Es9Function;
        use crate::es9::function::{CancelSession, InitiateAuthentication};
        let ok = br#"{"header":{"functionExecutionStatus":{"status":"Executed-Success"}},"transactionId":"01"}"#;
        let r = CancelSession::decode(200, ok).unwrap();
        assert_eq!(r.transaction_id.map(|t| t.to_hex()).as_deref(), Some("01"));
        // A failure that also parses as the response type is still a failure.
        let failed = br#"{"header":{"functionExecutionStatus":{"status":"Failed",
            "statusCodeData":{"subjectCode":"8.10.1","reasonCode":"3.9"}}},"transactionId":"01"}"#;
        let e = CancelSession::decode(200, failed).unwrap_err();
        assert_eq!(e.status_codes(), Some(("8.10.1", "3.9")));
        let e = InitiateAuthentication::decode(200, ok).unwrap_err();
        assert!(matches!(e, Es9ClientError::BadResponse { .. }), "{e:?}");
        let e = CancelSession::decode(503, ok).unwrap_err();
        assert!(matches!(e, Es9ClientError::HttpStatus { status: 503, .. }));
        let e = CancelSession::decode(200, b"<html>").unwrap_err();
        assert!(matches!(e, Es9ClientError::BadResponse { .. }));
    }

    #[test]
    fn an_executed_answer_with_a_warning_is_read() {
        let body = br#"{"header":{"functionExecutionStatus":{"status":"Executed-WithWarning",
            "statusCodeData":{"subjectCode":"8.1","reasonCode":"1.1"}}},"transactionId":"0A0B"}"#;
        let r: CancelSessionResponse = decode_answer("cancelSession", 200, body).unwrap();
        assert_eq!(
            r.transaction_id.map(|t| t.to_hex()).as_deref(),
            Some("0A0B")
        );
    }

    #[test]
    fn trust_setup() {
        assert!(TlsTrust::roots_from_bytes(b"junk").is_err());
        assert!(
            TlsTrust::roots_from_bytes(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
        assert!(
            TlsTrust::roots_from_bytes(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(Vec::new()))).is_err());
        assert!(
            HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::InsecureAcceptAnyCertificate)).is_ok()
        );
        let missing = TlsTrust::roots_from_files(&["/nonexistent/ci.pem"]).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/ci.pem"));
    }
}
