-- Profile end of life: the revocation of each revoked profile (one row per
-- ICCID, so a profile is revoked once) and each operator's reuse policy for
-- the ICCIDs of revoked profiles (retire, or quarantine for a period).
-- state: awaiting-device-delete | retired | quarantined. Times in ms.
CREATE TABLE profile_revocations (
    iccid                 TEXT PRIMARY KEY,
    operator              TEXT NOT NULL,
    eid                   TEXT,
    previous_state        TEXT NOT NULL,
    policy                TEXT NOT NULL,
    quarantine_seconds    BIGINT NOT NULL,
    state                 TEXT NOT NULL,
    reason                TEXT NOT NULL,
    revoked_at            BIGINT NOT NULL,
    deleted_on_device_at  BIGINT
);
CREATE INDEX profile_revocations_by_state ON profile_revocations(state, eid);
CREATE TABLE iccid_reuse_policies (
    operator            TEXT PRIMARY KEY,
    policy              TEXT NOT NULL,
    quarantine_seconds  BIGINT NOT NULL
);
