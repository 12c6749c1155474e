//! API tokens with scopes, for every REST API of `ferrosim serve` (the eIM's
//! now, the fleet's next).
//!
//! A token is `fsk_` followed by 43 characters of base64url (32 random
//! bytes); only its SHA-256 is stored, so a database leak yields no usable
//! token (the token's entropy makes a slow hash unnecessary). Tokens are
//! created by the CLI (`ferrosim api-token create`) and shown once. Each has
//! one [`Scope`]; scopes are ordered (`read-only` < `operator` < `admin`)
//! and an endpoint names the least it needs. Every request is checked
//! ([`Authorizer::authorize`]): no or an unknown or revoked token is `401`,
//! too small a scope is `403`, both with a JSON error body.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferrosim_eim::Timestamp;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use utoipa::ToSchema;

use super::ApiError;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Read everything, change nothing.
    ReadOnly,
    /// Also queue and withdraw work, associate devices.
    Operator,
    /// Also decisions about trust (marking devices as emulated).
    Admin,
}

impl Scope {
    /// `read-only`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses [`Scope::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read-only" => Some(Self::ReadOnly),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Whether a token of this scope may do what needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id (shown in lists, used to revoke it).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A token store failure.
#[derive(Debug, Error)]
#[error("token store: {0}")]
pub struct TokenStoreError(pub String);

/// Where API tokens are kept.
pub trait TokenStore: Send + Sync + 'static {
    /// The token whose secret hashes to `hash`.
    fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<ApiToken>, TokenStoreError>> + Send;
}

/// The prefix of every token's text.
pub const TOKEN_PREFIX: &str = "fsk_";

/// A fresh token: its text (to show once) and the record to store.
pub fn new_token(
    name: &str,
    scope: Scope,
    rng: &mut impl CryptoRng,
    now: Timestamp,
) -> (String, ApiToken) {
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let text = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let mut id = [0u8; 6];
    rng.fill_bytes(&mut id);
    let token = ApiToken {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        name: name.to_owned(),
        scope,
        hash: token_hash(&text),
        created_at: now,
        revoked_at: None,
    };
    (text, token)
}

/// SHA-256 of a token's text.
pub fn token_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Checks the bearer token of each request against a [`TokenStore`].
#[derive(Debug, Clone)]
pub struct Authorizer<T> {
    store: T,
}

impl<T: TokenStore> Authorizer<T> {
    /// An authorizer over `store`.
    pub fn new(store: T) -> Self {
        Self { store }
    }

    /// The token of `headers` if it may do what needs `needed`.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        needed: Scope,
    ) -> Result<ApiToken, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing `Authorization: Bearer <token>` header",
            ));
        };
        let text = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header is not `Bearer fsk_...`")
            })?;
        let token = self
            .store
            .token_by_hash(&token_hash(text))
            .await
            .map_err(|e| ApiError::internal(&e.to_string()))?
            .ok_or_else(|| ApiError::unauthorized("unknown API token"))?;
        if token.revoked_at.is_some() {
            return Err(ApiError::unauthorized("this API token was revoked"));
        }
        if !token.scope.allows(needed) {
            return Err(ApiError::forbidden(&format!(
                "this API token has scope `{}`; this call needs `{}`",
                token.scope, needed
            )));
        }
        Ok(token)
    }
}

/// Tokens in memory, for tests and the simulator.
#[derive(Debug, Clone, Default)]
pub struct MemTokenStore {
    tokens: Arc<Mutex<Vec<ApiToken>>>,
}

impl MemTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a token.
    pub fn insert(&self, token: ApiToken) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(token);
    }

    /// Revokes the token with `id`.
    pub fn revoke(&self, id: &str, now: Timestamp) {
        for t in self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
            .filter(|t| t.id == id)
        {
            t.revoked_at = Some(now);
        }
    }
}

impl TokenStore for MemTokenStore {
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, TokenStoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|t| t.hash == *hash)
            .cloned())
    }
}

/// Tokens in the instance's database (table `api_tokens`).
impl TokenStore for ferrosim_store::SqlStore {
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, TokenStoreError> {
        let row = self
            .api_token_by_hash(hash)
            .await
            .map_err(|e| TokenStoreError(e.to_string()))?;
        row.map(from_row).transpose()
    }
}

/// A stored row as a token.
pub fn from_row(row: ferrosim_store::ApiTokenRow) -> Result<ApiToken, TokenStoreError> {
    Ok(ApiToken {
        scope: Scope::parse(&row.scope)
            .ok_or_else(|| TokenStoreError(format!("unknown scope `{}`", row.scope)))?,
        id: row.id,
        name: row.name,
        hash: row.hash,
        created_at: Timestamp(row.created_at),
        revoked_at: row.revoked_at.map(Timestamp),
    })
}

/// A token as a row to store.
pub fn to_row(token: &ApiToken) -> ferrosim_store::ApiTokenRow {
    ferrosim_store::ApiTokenRow {
        id: token.id.clone(),
        name: token.name.clone(),
        scope: token.scope.as_str().to_owned(),
        hash: token.hash,
        created_at: token.created_at.0,
        revoked_at: token.revoked_at.map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.allows(Scope::Operator));
        assert!(Scope::Operator.allows(Scope::ReadOnly));
        assert!(!Scope::ReadOnly.allows(Scope::Operator));
        assert!(!Scope::Operator.allows(Scope::Admin));
        for s in [Scope::ReadOnly, Scope::Operator, Scope::Admin] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let mut rng = rand::rng();
        let (a, ta) = new_token("a", Scope::Operator, &mut rng, Timestamp(1));
        let (b, _) = new_token("b", Scope::Operator, &mut rng, Timestamp(1));
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(ta.hash, token_hash(&a));
        assert!(!format!("{ta:?}").contains(&a[4..]));
    }
}
