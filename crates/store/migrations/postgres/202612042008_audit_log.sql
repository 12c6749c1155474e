-- The audit trail (ferrosim-audit): hash-chained entries, append-only.
-- entry_hash = SHA-256 over a canonical encoding of the other columns and
-- prev_hash (the hash of entry seq - 1); `ferrosim audit verify` checks it.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    entry_hash  BYTEA NOT NULL
);

-- Signed statements "the log ended with entry seq of hash entry_hash".
CREATE TABLE audit_checkpoints (
    seq         BIGINT PRIMARY KEY,
    entry_hash  BYTEA NOT NULL,
    at          BIGINT NOT NULL,
    public_key  BYTEA NOT NULL,
    signature   BYTEA NOT NULL
);

-- Append-only for the application: a change or deletion is refused (someone
-- owning the database can drop this; the hash chain still shows it).
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
