//! ESipa over HTTPS, as SGP.32 IPAs speak it: `User-Agent: gsma-rsp-ipad`,
//! `X-Admin-Protocol: gsma/rsp/v1.2.0`, the ASN.1 binding (`POST
//! /gsma/rsp2/asn1`) or the JSON binding (`POST
//! /gsma/rsp2/esipa/<function>`). The eIM's TLS certificate is checked
//! against the roots given (as for ES9+: a GSMA CI or the operator's CA).
//!
//! Indirect downloads: on the ASN.1 binding the ES9+ steps travel as ESipa
//! messages ([`crate::relay`]); on the JSON binding their members are the
//! ES9+ members, so the ES9+ JSON goes to `/gsma/rsp2/esipa/<function>` and
//! the answer is read as the SM-DP+'s.

use std::time::Duration;

use ferrosim_lpa::es9::function::{
    AuthenticateClient, CancelSession, GetBoundProfilePackage, HandleNotification,
    InitiateAuthentication,
};
use ferrosim_lpa::es9::https::TlsTrust;
use ferrosim_lpa::es9::{Es9ClientError, Es9Function, Es9Request, Es9Response};

use super::EsipaClient;
use crate::esipa::{
    ADMIN_PROTOCOL, ASN1_CONTENT_TYPE, ASN1_PATH, Binding, EimReply, EsipaError, EsipaRequest,
    JSON_PATH, USER_AGENT, reply_from_asn1, reply_from_json,
};
use crate::relay;

/// Largest answer accepted (a bound profile package is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// An ESipa client over HTTPS. Cheap to clone (connections are shared).
#[derive(Debug, Clone)]
pub struct HttpsEsipa {
    http: reqwest::Client,
    base: String,
    binding: Binding,
}

impl HttpsEsipa {
    /// A client of the eIM at `address` (`host[:port]`, or a full
    /// `https://` or, for a lab, `http://` URL) on `binding`, trusting
    /// `trust`, giving up on a call after `timeout`.
    pub fn new(
        address: &str,
        binding: Binding,
        trust: &TlsTrust,
        timeout: Duration,
    ) -> Result<Self, EsipaError> {
        let setup = |reason: String| EsipaError::Unreachable {
            function: "setup",
            reason,
        };
        let address = address.trim().trim_end_matches('/');
        if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(setup(format!("`{address}` is not an eIM address")));
        }
        let base = if address.starts_with("https://") || address.starts_with("http://") {
            address.to_owned()
        } else {
            format!("https://{address}")
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        builder = match trust {
            TlsTrust::Roots(roots) => {
                if roots.is_empty() {
                    return Err(setup("no trusted certificate given".into()));
                }
                let certs = roots
                    .iter()
                    .map(|c| reqwest::Certificate::from_der(c.as_ref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| setup(format!("unusable trusted certificate: {e}")))?;
                builder.tls_certs_only(certs)
            }
            TlsTrust::InsecureAcceptAnyCertificate => {
                tracing::warn!("eIM TLS certificates are NOT verified (insecure mode)");
                builder.tls_danger_accept_invalid_certs(true)
            }
        };
        let http = builder.build().map_err(|e| setup(error_chain(&e)))?;
        Ok(Self {
            http,
            base,
            binding,
        })
    }

    /// The binding in use.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    async fn post(
        &self,
        function: &'static str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), EsipaError> {
        let failure = |e: reqwest::Error| {
            if e.is_timeout() {
                EsipaError::Timeout { function }
            } else {
                EsipaError::Unreachable {
                    function,
                    reason: error_chain(&e),
                }
            }
        };
        let mut response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("X-Admin-Protocol", ADMIN_PROTOCOL)
            .body(body)
            .send()
            .await
            .map_err(failure)?;
        let status = response.status().as_u16();
        let mut received = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failure)? {
            if received.len() + chunk.len() > MAX_BODY {
                return Err(EsipaError::BadAnswer {
                    function,
                    status,
                    reason: format!("answer larger than {MAX_BODY} bytes"),
                });
            }
            received.extend_from_slice(&chunk);
        }
        tracing::debug!(function, status, bytes = received.len(), "ESipa answer");
        Ok((status, received))
    }

    async fn relay_json<F: Es9Function>(
        &self,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| Es9ClientError::BadResponse {
            function: F::NAME,
            reason: format!("cannot encode the request: {e}"),
        })?;
        let (status, answer) = self
            .post(
                F::NAME,
                &format!("{JSON_PATH}/{}", F::NAME),
                "application/json",
                body,
            )
            .await
            .map_err(|e| relay_failure(F::NAME, &self.base, e))?;
        F::decode(status, &answer)
    }
}

impl EsipaClient for HttpsEsipa {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        let function = request.function();
        match self.binding {
            Binding::Asn1 => {
                let (status, body) = self
                    .post(function, ASN1_PATH, ASN1_CONTENT_TYPE, request.to_der()?)
                    .await?;
                reply_from_asn1(function, status, &body)
            }
            Binding::Json => {
                let path = format!("{JSON_PATH}/{function}");
                let (status, body) = self
                    .post(function, &path, "application/json", request.to_json()?)
                    .await?;
                reply_from_json(function, status, &body)
            }
        }
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        match self.binding {
            Binding::Asn1 => {
                let der = match relay::request_to_der(request) {
                    Ok(der) => der,
                    Err(e) => return request.failed(e),
                };
                match self
                    .post(request.name(), ASN1_PATH, ASN1_CONTENT_TYPE, der)
                    .await
                {
                    Ok((status, body)) => relay::response_from_der(request, status, &body),
                    Err(e) => request.failed(relay_failure(request.name(), &self.base, e)),
                }
            }
            Binding::Json => match request {
                Es9Request::InitiateAuthentication(r) => Es9Response::InitiateAuthentication(
                    self.relay_json::<InitiateAuthentication>(r).await,
                ),
                Es9Request::AuthenticateClient(r) => {
                    Es9Response::AuthenticateClient(self.relay_json::<AuthenticateClient>(r).await)
                }
                Es9Request::GetBoundProfilePackage(r) => Es9Response::GetBoundProfilePackage(
                    self.relay_json::<GetBoundProfilePackage>(r).await,
                ),
                Es9Request::HandleNotification(r) => {
                    Es9Response::HandleNotification(self.relay_json::<HandleNotification>(r).await)
                }
                Es9Request::CancelSession(r) => {
                    Es9Response::CancelSession(self.relay_json::<CancelSession>(r).await)
                }
            },
        }
    }
}

/// An ESipa failure of a relayed step, as the LPA machines understand it
/// (unreachable and timeouts are transient there too).
fn relay_failure(function: &'static str, base: &str, e: EsipaError) -> Es9ClientError {
    match e {
        EsipaError::Timeout { .. } => Es9ClientError::Timeout {
            function,
            address: base.to_owned(),
        },
        EsipaError::Unreachable { reason, .. } => Es9ClientError::Unreachable {
            function,
            address: base.to_owned(),
            reason,
        },
        other => Es9ClientError::BadResponse {
            function,
            reason: other.to_string(),
        },
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
