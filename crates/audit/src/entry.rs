//! Records, entries and the hash that chains them.

use ferrosim_ids::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `previous hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Domain separation of [`entry_hash`]: a hash of something else never
/// passes for an entry's.
const DOMAIN: &[u8] = b"ferrosim-audit-entry-v1\0";

/// Who did it: `operator:<id>` (ES2+), `token:<id>` (a REST API token),
/// `client:<address>` (a device or an unauthenticated caller), `cli:<user>`
/// (a command run on the host) or `system` (the server on its own).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    /// An operator authenticated on ES2+.
    pub fn operator(id: &str) -> Self {
        Self(format!("operator:{id}"))
    }

    /// A REST API token, by its id (never its secret).
    pub fn token(id: &str) -> Self {
        Self(format!("token:{id}"))
    }

    /// A network client by its address (devices on ES9+/ESipa, callers that
    /// did not authenticate).
    pub fn client(address: impl std::fmt::Display) -> Self {
        Self(format!("client:{address}"))
    }

    /// A person at the host's command line (the OS user name).
    pub fn cli(user: &str) -> Self {
        Self(format!("cli:{user}"))
    }

    /// The server acting on its own (expiry, housekeeping, checkpoints).
    pub fn system() -> Self {
        Self("system".to_owned())
    }

    /// An actor as stored.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something to append: when, who, what, on what, details.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What was done, dotted: `es2.downloadOrder`, `eim.queue`,
    /// `api-token.create`, `operator.add`...
    pub action: String,
    /// What it was done to: an ICCID, an EID, a transaction id, a token id,
    /// an operator id (empty when nothing in particular).
    pub subject: String,
    /// The rest, as JSON (never a secret: no keys, tokens, K/OPc).
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// A record at `at` with empty details.
    pub fn new(at: Timestamp, actor: Actor, action: &str, subject: &str) -> Self {
        Self {
            at,
            actor,
            action: action.to_owned(),
            subject: subject.to_owned(),
            details: serde_json::Value::Null,
        }
    }

    /// The same record with `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// An entry of the log: a record with its place in the chain. The details
/// are kept as the exact JSON text that was hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3... without gaps.
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    /// Who did it (see [`Actor`]).
    pub actor: String,
    /// What was done.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details, JSON text.
    pub details: String,
    /// The hash of entry `seq - 1` ([`GENESIS_HASH`] for the first).
    #[serde(with = "hex_32")]
    pub prev_hash: [u8; 32],
    /// [`entry_hash`] of this entry.
    #[serde(with = "hex_32")]
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// Whether the stored hash is the hash of the stored fields.
    pub fn hash_is_consistent(&self) -> bool {
        self.computed_hash() == self.hash
    }

    /// The hash its fields give at its own sequence number.
    pub fn computed_hash(&self) -> [u8; 32] {
        self.hash_at(self.seq)
    }

    /// The hash its fields would give at sequence number `seq`.
    pub fn hash_at(&self, seq: u64) -> [u8; 32] {
        entry_hash(
            seq,
            self.at,
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            &self.prev_hash,
        )
    }
}

/// SHA-256 over the canonical encoding of an entry: a domain tag, the
/// sequence number and time as 8 big-endian bytes each, each text field as
/// its length (4 bytes, big-endian) and UTF-8 bytes, then the previous hash.
/// Length prefixes make the encoding unambiguous (no two field lists encode
/// alike).
pub fn entry_hash(
    seq: u64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [actor, action, subject, details] {
        // Fields longer than 4 GiB cannot be stored; saturate rather than wrap.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update(prev_hash);
    h.finalize().into()
}

/// Chains `records` after the entry `(last_seq, last_hash)` (`(0,
/// GENESIS_HASH)` for an empty log).
pub fn chain(last_seq: u64, last_hash: [u8; 32], records: &[AuditRecord]) -> Vec<AuditEntry> {
    let mut prev = last_hash;
    records
        .iter()
        .zip(last_seq + 1..)
        .map(|(r, seq)| {
            let details = if r.details.is_null() {
                "{}".to_owned()
            } else {
                r.details.to_string()
            };
            let hash = entry_hash(
                seq,
                r.at.0,
                r.actor.as_str(),
                &r.action,
                &r.subject,
                &details,
                &prev,
            );
            let e = AuditEntry {
                seq,
                at: r.at.0,
                actor: r.actor.as_str().to_owned(),
                action: r.action.clone(),
                subject: r.subject.clone(),
                details,
                prev_hash: prev,
                hash,
            };
            prev = hash;
            e
        })
        .collect()
}

/// Hashes as lowercase hex in JSON.
pub(crate) mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom("a hash is 32 bytes (64 hex digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_entries_link_and_hash() {
        let recs: Vec<_> = (0..3)
            .map(|i| AuditRecord::new(Timestamp(i), Actor::system(), "a", "s"))
            .collect();
        let es = chain(0, GENESIS_HASH, &recs);
        assert_eq!(es[0].prev_hash, GENESIS_HASH);
        assert_eq!(es[1].prev_hash, es[0].hash);
        assert_eq!(es[2].seq, 3);
        assert!(es.iter().all(AuditEntry::hash_is_consistent));
        // The encoding is unambiguous: moving a byte between fields changes the hash.
        let a = entry_hash(1, 0, "ab", "c", "", "{}", &GENESIS_HASH);
        let b = entry_hash(1, 0, "a", "bc", "", "{}", &GENESIS_HASH);
        assert_ne!(a, b);
    }
}
