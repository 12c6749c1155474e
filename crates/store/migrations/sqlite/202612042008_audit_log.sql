-- The audit trail (ferrosim-audit): hash-chained entries, append-only.
-- entry_hash = SHA-256 over a canonical encoding of the other columns and
-- prev_hash (the hash of entry seq - 1); `ferrosim audit verify` checks it.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    entry_hash  BLOB NOT NULL
);

-- Signed statements "the log ended with entry seq of hash entry_hash".
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    entry_hash  BLOB NOT NULL,
    at          INTEGER NOT NULL,
    public_key  BLOB NOT NULL,
    signature   BLOB NOT NULL
);

-- Append-only for the application: a change or deletion is refused (someone
-- with the database file can drop these; the hash chain still shows it).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
