//! The operator's side of ES2+: a typed HTTPS client of an SM-DP+'s
//! `/gsma/rsp2/es2plus/…` functions, authenticated with the operator's
//! bearer token.
//!
//! `ferrosim demo` and `ferrosim bench` order their profiles with it, and
//! tests use it to play an operator's back office against a running
//! `ferrosim serve`. Every call carries a fresh `functionCallIdentifier`
//! unless the caller supplies the header itself (to replay a call).

use ferrosim_asn1::json::es2::{
    CancelOrderRequest, ConfirmOrderRequest, ConfirmOrderResponse, DownloadOrderRequest,
    DownloadOrderResponse, ReleaseProfileRequest, RequestHeader,
};
use ferrosim_asn1::json::{Answer, HeaderOnly, read_answer};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an ES2+ call failed.
#[derive(Debug, thiserror::Error)]
pub enum Es2ClientError {
    /// The SM-DP+ executed the function and reported a failure.
    #[error("{function} failed at the SM-DP+: subject {subject_code}, reason {reason_code}{}",
        message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Failed {
        /// The ES2+ function.
        function: &'static str,
        /// SGP.22 subject code, e.g. `8.2.5`.
        subject_code: String,
        /// SGP.22 reason code, e.g. `3.7`.
        reason_code: String,
        /// The SM-DP+'s message, if any.
        message: Option<String>,
    },
    /// The SM-DP+ could not be reached, or answered with an HTTP error.
    #[error("{function}: {source}")]
    Http {
        /// The ES2+ function.
        function: &'static str,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The answer is not the JSON the binding defines.
    #[error("{function}: malformed answer from the SM-DP+: {reason}")]
    BadResponse {
        /// The ES2+ function.
        function: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The trusted certificates could not be used to build the client.
    #[error("ES2+ client: {0}")]
    Setup(String),
}

/// An ES2+ client of one operator at one SM-DP+.
#[derive(Debug, Clone)]
pub struct Es2Client {
    base_url: String,
    operator: String,
    token: String,
    http: reqwest::Client,
}

impl Es2Client {
    /// Calls the SM-DP+ at `base_url` (`https://host:port`) as `operator`
    /// with its bearer `token`, trusting only the CA/CI certificate(s) in
    /// `trusted_pem` for the SM-DP+'s TLS certificate.
    pub fn new(
        base_url: &str,
        operator: &str,
        token: &str,
        trusted_pem: &[u8],
    ) -> Result<Self, Es2ClientError> {
        let setup = |e: reqwest::Error| Es2ClientError::Setup(e.to_string());
        let roots = reqwest::Certificate::from_pem_bundle(trusted_pem).map_err(setup)?;
        if roots.is_empty() {
            return Err(Es2ClientError::Setup(
                "no PEM certificate among the trusted certificates".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .tls_certs_only(roots)
            .build()
            .map_err(setup)?;
        Ok(Self::with_http(base_url, operator, token, http))
    }

    /// Like [`Es2Client::new`] over an HTTP client the caller configured
    /// (and may share with other clients).
    pub fn with_http(base_url: &str, operator: &str, token: &str, http: reqwest::Client) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            operator: operator.to_owned(),
            token: token.to_owned(),
            http,
        }
    }

    /// A request header with this operator and a fresh call identifier.
    pub fn header(&self) -> RequestHeader {
        RequestHeader {
            function_requester_identifier: self.operator.clone(),
            function_call_identifier: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// POSTs `request` to `function` and decodes a successful answer as
    /// `Resp`; a `Failed` answer is [`Es2ClientError::Failed`].
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        function: &'static str,
        request: &Req,
    ) -> Result<Resp, Es2ClientError> {
        let http = |source| Es2ClientError::Http { function, source };
        let bytes = self
            .http
            .post(format!("{}/gsma/rsp2/es2plus/{function}", self.base_url))
            .bearer_auth(&self.token)
            .json(request)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http)?
            .bytes()
            .await
            .map_err(http)?;
        match read_answer(&bytes) {
            Answer::Executed(output) => Ok(output),
            Answer::Failed(data) => Err(Es2ClientError::Failed {
                function,
                subject_code: data.subject_code,
                reason_code: data.reason_code,
                message: data.message,
            }),
            Answer::Malformed(reason) => Err(Es2ClientError::BadResponse { function, reason }),
        }
    }

    /// `downloadOrder`: reserves a profile (by ICCID or profile type),
    /// linked to an EID when given.
    pub async fn download_order(
        &self,
        request: &DownloadOrderRequest,
    ) -> Result<DownloadOrderResponse, Es2ClientError> {
        self.call("downloadOrder", request).await
    }

    /// `confirmOrder`: sets the matching id, confirmation code and release.
    pub async fn confirm_order(
        &self,
        request: &ConfirmOrderRequest,
    ) -> Result<ConfirmOrderResponse, Es2ClientError> {
        self.call("confirmOrder", request).await
    }

    /// `cancelOrder`.
    pub async fn cancel_order(&self, request: &CancelOrderRequest) -> Result<(), Es2ClientError> {
        self.call::<_, HeaderOnly>("cancelOrder", request)
            .await
            .map(drop)
    }

    /// `releaseProfile`.
    pub async fn release_profile(
        &self,
        request: &ReleaseProfileRequest,
    ) -> Result<(), Es2ClientError> {
        self.call::<_, HeaderOnly>("releaseProfile", request)
            .await
            .map(drop)
    }

    /// `revokeProfile` (ferrosim's ES2+ extension): ends the profile's
    /// order and records its end of life at the SM-DP+; the answer names the
    /// device to delete it from.
    pub async fn revoke_profile(
        &self,
        request: &ferrosim_smdp::end_of_life::RevokeProfileRequest,
    ) -> Result<ferrosim_smdp::end_of_life::RevokeProfileResponse, Es2ClientError> {
        self.call("revokeProfile", request).await
    }

    /// The usual order: `downloadOrder` of any profile of `profile_type`
    /// (linked to `eid` when given), then `confirmOrder` with release and
    /// the optional confirmation code. Returns the ICCID and the matching
    /// id the SM-DP+ generated, i.e. what an activation code needs.
    pub async fn order_released(
        &self,
        profile_type: &str,
        eid: Option<&str>,
        confirmation_code: Option<&str>,
    ) -> Result<(String, String), Es2ClientError> {
        let ordered = self
            .download_order(&DownloadOrderRequest {
                header: self.header(),
                eid: eid.map(str::to_owned),
                iccid: None,
                profile_type: Some(profile_type.to_owned()),
            })
            .await?;
        let confirmed = self
            .confirm_order(&ConfirmOrderRequest {
                header: self.header(),
                iccid: ordered.iccid.clone(),
                eid: eid.map(str::to_owned),
                matching_id: None,
                confirmation_code: confirmation_code.map(str::to_owned),
                smds_address: None,
                release_flag: true,
            })
            .await?;
        Ok((ordered.iccid, confirmed.matching_id))
    }
}
