-- Compare-and-set commits: every profile and session row carries a version,
-- and a commit rewrites a row only if it is still at the version the step
-- read. Sessions keep the data of their phase: the challenges and the agreed
-- CI until the eUICC is authenticated, then its binding (so those columns
-- may be empty).

ALTER TABLE profiles ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sessions_v2 (
    transaction_id    BLOB PRIMARY KEY,
    version           INTEGER NOT NULL DEFAULT 0,
    state             TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    euicc_challenge   BLOB,
    server_challenge  BLOB,
    ci_key_id         BLOB,
    eid               TEXT,
    euicc_public_key  BLOB,
    iccid             TEXT,
    cc_required       INTEGER NOT NULL DEFAULT 0,
    smdp_signature2   BLOB,
    euicc_otpk        BLOB
);
INSERT INTO sessions_v2 (transaction_id, state, created_at, expires_at, updated_at,
    euicc_challenge, server_challenge, ci_key_id, eid, euicc_public_key, iccid, cc_required,
    smdp_signature2, euicc_otpk)
SELECT transaction_id, state, created_at, expires_at, updated_at, euicc_challenge,
    server_challenge, ci_key_id, eid, euicc_public_key, iccid, cc_required, smdp_signature2,
    euicc_otpk
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v2 RENAME TO sessions;
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

-- The guard of a compare-and-set on SQLite. A commit's statements travel as
-- one query (one round trip to the writer), so a conditional UPDATE that
-- matched no row must stop the query by itself: each one is followed by
-- `INSERT INTO ferrosim_cas (changed) VALUES (changes())`, which raises
-- when the UPDATE changed no row; the store then rolls the query back to
-- its savepoint and reports the record as stale.
CREATE VIEW ferrosim_cas AS SELECT 0 AS changed;
CREATE TRIGGER ferrosim_cas_check INSTEAD OF INSERT ON ferrosim_cas
WHEN NEW.changed <> 1
BEGIN
    SELECT RAISE(ABORT, 'ferrosim: stale record');
END;
