//! [`KeySource`] backed by a PKCS#11 token (HSM, SoftHSM2, smart card).
//!
//! A production SM-DP+ keeps its DPauth/DPpb private keys in a token that
//! never lets them out. [`Pkcs11Key`] finds a P-256 private key by label,
//! reads the matching public key (`CKA_EC_POINT`), and signs with `CKM_ECDSA`
//! over a SHA-256 hash computed here (SoftHSM2 2.6 has no `CKM_ECDSA_SHA256`).
//! ECDH uses `CKM_ECDH1_DERIVE` when the token offers it and returns
//! [`Error::Unsupported`] otherwise.
//!
//! Modules are loaded and `C_Initialize`d once per process and shared by all
//! keys opened from the same path. Each key keeps a small pool of logged-in
//! sessions, so it is `Send + Sync` and serves concurrent callers without a
//! global lock around the token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use aws_lc_rs::digest;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroize;

use crate::ecdsa::{RAW_SIGNATURE_LEN, UNCOMPRESSED_POINT_LEN, VerifyingKey};
use crate::error::{Error, Result};
use crate::key::{KeySource, SHARED_SECRET_LEN, SharedSecret};

/// DER of the P-256 curve OID (`1.2.840.10045.3.1.7`), the `CKA_EC_PARAMS` value.
const P256_EC_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// Idle sessions kept open per key; more are opened under load and closed after.
const MAX_IDLE_SESSIONS: usize = 8;

/// A P-256 private key inside a PKCS#11 token.
pub struct Pkcs11Key {
    pool: SessionPool,
    private: ObjectHandle,
    public: [u8; UNCOMPRESSED_POINT_LEN],
    key_label: String,
    token_label: String,
    ecdh: bool,
}

impl Pkcs11Key {
    /// Opens the key pair labelled `key_label` (`CKA_LABEL`) in the token
    /// labelled `token_label`, logging in with the user PIN.
    ///
    /// The module at `module` is loaded and initialised on first use. Before
    /// returning, the key signs a probe message that is verified with the
    /// token's public key, so a mismatched pair is caught here.
    pub fn open(
        module: impl AsRef<Path>,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self> {
        let pool = SessionPool::open(module.as_ref(), token_label, pin)?;
        let (private, public) = pool.with_session(|s| find_key_pair(s, key_label))?;
        let ecdh = pool.supports(MechanismType::ECDH1_DERIVE)?
            && pool.with_session(|s| may_derive(s, private))?;
        let key = Self {
            pool,
            private,
            public,
            key_label: key_label.to_owned(),
            token_label: token_label.to_owned(),
            ecdh,
        };
        key.self_test()?;
        Ok(key)
    }

    /// Generates a new P-256 key pair inside the token, private half
    /// sensitive and non-extractable, both labelled `key_label`, and opens it.
    ///
    /// Refuses with [`Error::Pkcs11Object`] if a private key with that label
    /// already exists.
    pub fn generate(
        module: impl AsRef<Path>,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self> {
        let module = module.as_ref();
        let pool = SessionPool::open(module, token_label, pin)?;
        pool.with_session(|s| {
            if !find(s, ObjectClass::PRIVATE_KEY, key_label)?.is_empty() {
                return Err(Error::Pkcs11Object(format!(
                    "a private key labelled {key_label:?} already exists"
                )));
            }
            let label = key_label.as_bytes().to_vec();
            let id = digest::digest(&digest::SHA256, key_label.as_bytes()).as_ref()[..16].to_vec();
            let public_template = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(P256_EC_PARAMS.to_vec()),
                Attribute::Label(label.clone()),
                Attribute::Id(id.clone()),
            ];
            let private_template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Derive(true),
                Attribute::Label(label),
                Attribute::Id(id),
            ];
            s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(ck("generating a key pair"))?;
            Ok(())
        })?;
        drop(pool);
        Self::open(module, token_label, pin, key_label)
    }

    /// Whether the token offers `CKM_ECDH1_DERIVE` and the key allows it
    /// (`CKA_DERIVE`), so [`KeySource::ecdh`] works.
    pub fn supports_ecdh(&self) -> bool {
        self.ecdh
    }

    /// The key's `CKA_LABEL`.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The label of the token holding the key.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// Reads `CKA_SENSITIVE` and `CKA_EXTRACTABLE` of the private key, for
    /// operators auditing that the key cannot leave the token.
    pub fn protection(&self) -> Result<KeyProtection> {
        self.pool.with_session(|s| {
            let attrs = s
                .get_attributes(
                    self.private,
                    &[AttributeType::Sensitive, AttributeType::Extractable],
                )
                .map_err(ck("reading key attributes"))?;
            let mut protection = KeyProtection {
                sensitive: false,
                extractable: true,
            };
            for attr in attrs {
                match attr {
                    Attribute::Sensitive(v) => protection.sensitive = v,
                    Attribute::Extractable(v) => protection.extractable = v,
                    _ => {}
                }
            }
            Ok(protection)
        })
    }

    fn self_test(&self) -> Result<()> {
        const PROBE: &[u8] = b"ferrosim PKCS#11 key self-test";
        let sig = self.sign_raw(PROBE)?;
        VerifyingKey::from_sec1(&self.public)?
            .verify_raw(PROBE, &sig)
            .map_err(|_| {
                Error::Pkcs11Object(format!(
                    "public key labelled {:?} does not match the private key",
                    self.key_label
                ))
            })
    }
}

/// Protection attributes of a token key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_SENSITIVE`: the value may not be revealed in plaintext.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key may be wrapped out of the token.
    pub extractable: bool,
}

impl KeySource for Pkcs11Key {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public
    }

    fn sign_raw(&self, message: &[u8]) -> Result<[u8; RAW_SIGNATURE_LEN]> {
        let hash = digest::digest(&digest::SHA256, message);
        let sig = self.pool.with_session(|s| {
            s.sign(&Mechanism::Ecdsa, self.private, hash.as_ref())
                .map_err(ck("signing"))
        })?;
        sig.as_slice().try_into().map_err(|_| {
            Error::Pkcs11Object(format!(
                "token returned a {}-byte ECDSA signature, expected 64",
                sig.len()
            ))
        })
    }

    fn ecdh(&self, peer_public_sec1: &[u8]) -> Result<SharedSecret> {
        if !self.ecdh {
            return Err(Error::Unsupported(
                "ECDH: the token lacks CKM_ECDH1_DERIVE or the key has CKA_DERIVE false",
            ));
        }
        // Tokens differ in the point forms they accept; always send uncompressed.
        let peer = VerifyingKey::from_sec1(peer_public_sec1)?.to_uncompressed()?;
        self.pool.with_session(|s| {
            let params = Ecdh1DeriveParams::new(EcKdf::null(), &peer);
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen((SHARED_SECRET_LEN as u64).into()),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ];
            let derived = s
                .derive_key(&Mechanism::Ecdh1Derive(params), self.private, &template)
                .map_err(|e| match e {
                    CkError::Pkcs11(
                        RvError::MechanismInvalid | RvError::KeyFunctionNotPermitted,
                        _,
                    ) => Error::Unsupported("the token refused CKM_ECDH1_DERIVE with this key"),
                    other => ck("ECDH key derivation")(other),
                })?;
            let value = s.get_attributes(derived, &[AttributeType::Value]);
            let destroyed = s.destroy_object(derived);
            let mut secret = None;
            for attr in value.map_err(ck("reading the derived secret"))? {
                if let Attribute::Value(mut bytes) = attr {
                    secret = Some(SharedSecret::from_slice(&bytes));
                    bytes.zeroize();
                }
            }
            destroyed.map_err(ck("destroying the derived secret"))?;
            secret.unwrap_or(Err(Error::Pkcs11Object(
                "token returned no CKA_VALUE for the derived secret".into(),
            )))
        })
    }
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("token", &self.token_label)
            .field("key", &self.key_label)
            .field("public", &crate::ecdsa::HexBytes(&self.public))
            .field("ecdh", &self.ecdh)
            .finish_non_exhaustive()
    }
}

/// Logged-in sessions on one token, handed out one caller at a time.
pub(crate) struct SessionPool {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    idle: Mutex<Vec<Session>>,
}

impl SessionPool {
    pub(crate) fn open(module: &Path, token_label: &str, pin: &str) -> Result<Self> {
        let ctx = module_context(module)?;
        let slot = find_token(&ctx, token_label)?;
        let pool = Self {
            ctx,
            slot,
            pin: AuthPin::from(pin),
            idle: Mutex::new(Vec::new()),
        };
        // Open and log in one session now so a wrong PIN fails here; it stays
        // in the pool, which keeps the token's login state alive.
        let session = pool.new_session()?;
        pool.release(session);
        Ok(pool)
    }

    pub(crate) fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let session = match self.lock().pop() {
            Some(session) => session,
            None => self.new_session()?,
        };
        let result = f(&session);
        self.release(session);
        result
    }

    fn supports(&self, mechanism: MechanismType) -> Result<bool> {
        let list = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(ck("listing mechanisms"))?;
        Ok(list.contains(&mechanism))
    }

    fn new_session(&self) -> Result<Session> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(ck("opening a session"))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(ck("logging in")(e)),
        }
    }

    fn release(&self, session: Session) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        // A panic while holding the lock leaves only a list of sessions behind.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Loads and initialises a module once per process and path.
fn module_context(module: &Path) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let modules = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut modules = modules.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|source| Error::Pkcs11 {
        operation: "loading the module",
        source,
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("initialising the module")(e)),
    }
    modules.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    for slot in ctx.get_slots_with_token().map_err(ck("listing slots"))? {
        let info = ctx.get_token_info(slot).map_err(ck("reading token info"))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(Error::Pkcs11Object(format!("no token labelled {label:?}")))
}

/// Whether the private key has `CKA_DERIVE` set.
fn may_derive(session: &Session, private: ObjectHandle) -> Result<bool> {
    let attrs = session
        .get_attributes(private, &[AttributeType::Derive])
        .map_err(ck("reading CKA_DERIVE"))?;
    Ok(attrs.iter().any(|a| matches!(a, Attribute::Derive(true))))
}

fn find(session: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(ck("finding objects"))
}

/// Finds exactly one EC private key and one EC public key with `label`, checks
/// the curve, and decodes the public point.
fn find_key_pair(
    session: &Session,
    label: &str,
) -> Result<(ObjectHandle, [u8; UNCOMPRESSED_POINT_LEN])> {
    let private = match find(session, ObjectClass::PRIVATE_KEY, label)?.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Pkcs11Object(format!(
                "no EC private key labelled {label:?}"
            )));
        }
        _ => {
            return Err(Error::Pkcs11Object(format!(
                "several EC private keys labelled {label:?}"
            )));
        }
    };
    let public = match find(session, ObjectClass::PUBLIC_KEY, label)?.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Pkcs11Object(format!(
                "no EC public key labelled {label:?}"
            )));
        }
        _ => {
            return Err(Error::Pkcs11Object(format!(
                "several EC public keys labelled {label:?}"
            )));
        }
    };
    let attrs = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(ck("reading the public key"))?;
    let mut params = None;
    let mut point = None;
    for attr in attrs {
        match attr {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if params.as_deref() != Some(&P256_EC_PARAMS[..]) {
        return Err(Error::Pkcs11Object(format!(
            "key {label:?} is not on P-256 (prime256v1)"
        )));
    }
    let point =
        point.ok_or_else(|| Error::Pkcs11Object("public key has no CKA_EC_POINT".into()))?;
    let sec1 = ec_point_to_sec1(&point)?;
    Ok((private, sec1))
}

/// `CKA_EC_POINT` is a DER OCTET STRING wrapping the SEC1 point; some tokens
/// return the bare point. Accept both, return the uncompressed form.
fn ec_point_to_sec1(value: &[u8]) -> Result<[u8; UNCOMPRESSED_POINT_LEN]> {
    let point = match value {
        [0x04, 65, rest @ ..] if rest.len() == 65 => rest,
        [0x04, 33, rest @ ..] if rest.len() == 33 => rest,
        _ => value,
    };
    VerifyingKey::from_sec1(point)?.to_uncompressed()
}

/// Maps a cryptoki error to [`Error::Pkcs11`] with what was being done.
pub(crate) fn ck(operation: &'static str) -> impl Fn(CkError) -> Error {
    move |source| Error::Pkcs11 { operation, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SoftwareKey;

    #[test]
    fn ec_point_forms() {
        let key = SoftwareKey::generate().unwrap();
        let raw = key.public_key_sec1().to_vec();
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&raw);
        assert_eq!(ec_point_to_sec1(&wrapped).unwrap().to_vec(), raw);
        assert_eq!(ec_point_to_sec1(&raw).unwrap().to_vec(), raw);
        let mut compressed = vec![0x04, 33, 0x02 | (raw[64] & 1)];
        compressed.extend_from_slice(&raw[1..33]);
        assert_eq!(ec_point_to_sec1(&compressed).unwrap().to_vec(), raw);
        assert!(matches!(
            ec_point_to_sec1(&[0x04, 0x01, 0x00]),
            Err(Error::InvalidPoint(_))
        ));
    }

    #[test]
    fn missing_module_is_a_typed_error() {
        let err = Pkcs11Key::open("/nonexistent/libpkcs11.so", "t", "1234", "k").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Pkcs11 {
                    operation: "loading the module",
                    ..
                }
            ),
            "{err}"
        );
    }
}
