-- ferrosim SM-DP+ schema, SQLite flavour. Times are Unix milliseconds.

CREATE TABLE operators (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    callback_url  TEXT
);

CREATE TABLE profile_types (
    operator               TEXT NOT NULL REFERENCES operators(id),
    name                   TEXT NOT NULL,
    package                BLOB NOT NULL,
    metadata               TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    PRIMARY KEY (operator, name)
);

CREATE TABLE profiles (
    iccid                  TEXT PRIMARY KEY,
    operator               TEXT NOT NULL,
    profile_type           TEXT NOT NULL,
    state                  TEXT NOT NULL,
    personalisation        TEXT NOT NULL,
    has_order              INTEGER NOT NULL DEFAULT 0,
    eid                    TEXT,
    matching_id            TEXT UNIQUE,
    cc_hash                BLOB,
    cc_failed_attempts     INTEGER NOT NULL DEFAULT 0,
    smds_address           TEXT,
    order_created_at       INTEGER,
    order_expires_at       INTEGER,
    session_tid            BLOB,
    download_attempts      INTEGER NOT NULL DEFAULT 0,
    failure_bpp_command_id INTEGER,
    failure_error_reason   INTEGER,
    failure_message        TEXT,
    updated_at             INTEGER NOT NULL,
    FOREIGN KEY (operator, profile_type) REFERENCES profile_types(operator, name)
);
CREATE INDEX profiles_by_type_state ON profiles(operator, profile_type, state);
CREATE INDEX profiles_by_eid ON profiles(eid) WHERE eid IS NOT NULL;
CREATE INDEX profiles_by_expiry ON profiles(order_expires_at) WHERE has_order = 1;

CREATE TABLE sessions (
    transaction_id    BLOB PRIMARY KEY,
    state             TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    euicc_challenge   BLOB NOT NULL,
    server_challenge  BLOB NOT NULL,
    ci_key_id         BLOB NOT NULL,
    eid               TEXT,
    euicc_public_key  BLOB,
    iccid             TEXT,
    cc_required       INTEGER NOT NULL DEFAULT 0,
    smdp_signature2   BLOB,
    euicc_otpk        BLOB
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

CREATE TABLE callbacks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    operator         TEXT NOT NULL,
    iccid            TEXT NOT NULL,
    eid              TEXT,
    profile_type     TEXT NOT NULL,
    point            INTEGER NOT NULL,
    failure_subject  TEXT,
    failure_reason   TEXT,
    result_data      BLOB,
    event_at         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    delivered_at     INTEGER,
    last_error       TEXT
);
CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    seq_number   INTEGER NOT NULL,
    operation    TEXT NOT NULL,
    iccid        TEXT,
    eid          TEXT,
    address      TEXT NOT NULL,
    raw          BLOB NOT NULL,
    received_at  INTEGER NOT NULL
);

CREATE TABLE es2_calls (
    operator      TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    function      TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    response      TEXT,
    started_at    INTEGER NOT NULL,
    PRIMARY KEY (operator, call_id)
);
