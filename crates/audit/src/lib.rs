//! The tamper-evident audit trail of ferrosim.
//!
//! Every privileged call and state change (ES2+ calls, order changes seen on
//! ES9+, eIM packages queued and their results, API tokens created and used,
//! operator, profile-type, key and configuration changes) is an
//! [`AuditRecord`]: when, who ([`Actor`]), what (an action name), on what (a
//! subject) and details (JSON). Appended to an [`AuditLog`], a record becomes
//! an [`AuditEntry`] with a sequence number and two hashes: the hash of the
//! entry before it and its own SHA-256 over a canonical encoding of all its
//! fields and that previous hash ([`entry_hash`]). The entries form a chain:
//!
//! - editing an entry breaks its own hash (or, if the editor recomputed it,
//!   the link of the next entry);
//! - removing one leaves a gap in the sequence or a broken link;
//! - reordering puts an entry where its link points elsewhere;
//!
//! and [`verify`] says which entry and which kind of tampering. Removing the
//! *tail* leaves a valid shorter chain; [`Checkpoint`]s catch that: a
//! checkpoint is the sequence number and hash of the last entry at some time,
//! signed with an ECDSA P-256 key (a file or a PKCS#11 token, any
//! [`ferrosim_crypto::KeySource`]). A checkpoint naming an entry the log no
//! longer has, or a different hash for it, is reported.
//!
//! What this does not do: prove that no record was *withheld* before it was
//! appended (the process appends what it is told), or stop someone with write
//! access to the database and the checkpoint key from rewriting everything.
//! Keep a copy of the checkpoints outside the database (`ferrosim audit
//! checkpoint --out`) and the key away from the database host.
//!
//! This crate is pure: hashing, chaining, verification and signing; the SQL
//! log is in `ferrosim-store`, the batching appender of the server in
//! `ferrosim-server`. [`MemAuditLog`] keeps a log in memory (tests, the
//! simulator).

mod checkpoint;
mod entry;
mod log;
mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, checkpoint_message, sign_checkpoint};
pub use entry::{Actor, AuditEntry, AuditRecord, GENESIS_HASH, chain, entry_hash};
pub use log::{AuditError, AuditLog, Head, MemAuditLog};
pub use verify::{Problem, Verifier, VerifyReport, verify};
