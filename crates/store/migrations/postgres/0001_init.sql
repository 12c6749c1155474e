-- ferrosim SM-DP+ schema, PostgreSQL flavour. Times are Unix milliseconds.

CREATE TABLE operators (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    callback_url  TEXT
);

CREATE TABLE profile_types (
    operator               TEXT NOT NULL REFERENCES operators(id),
    name                   TEXT NOT NULL,
    package                BYTEA NOT NULL,
    metadata               TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    PRIMARY KEY (operator, name)
);

CREATE TABLE profiles (
    iccid                  TEXT PRIMARY KEY,
    operator               TEXT NOT NULL,
    profile_type           TEXT NOT NULL,
    state                  TEXT NOT NULL,
    personalisation        TEXT NOT NULL,
    has_order              BIGINT NOT NULL DEFAULT 0,
    eid                    TEXT,
    matching_id            TEXT UNIQUE,
    cc_hash                BYTEA,
    cc_failed_attempts     BIGINT NOT NULL DEFAULT 0,
    smds_address           TEXT,
    order_created_at       BIGINT,
    order_expires_at       BIGINT,
    session_tid            BYTEA,
    download_attempts      BIGINT NOT NULL DEFAULT 0,
    failure_bpp_command_id BIGINT,
    failure_error_reason   BIGINT,
    failure_message        TEXT,
    updated_at             BIGINT NOT NULL,
    FOREIGN KEY (operator, profile_type) REFERENCES profile_types(operator, name)
);
CREATE INDEX profiles_by_type_state ON profiles(operator, profile_type, state);
CREATE INDEX profiles_by_eid ON profiles(eid) WHERE eid IS NOT NULL;
CREATE INDEX profiles_by_expiry ON profiles(order_expires_at) WHERE has_order = 1;

CREATE TABLE sessions (
    transaction_id    BYTEA PRIMARY KEY,
    state             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    euicc_challenge   BYTEA NOT NULL,
    server_challenge  BYTEA NOT NULL,
    ci_key_id         BYTEA NOT NULL,
    eid               TEXT,
    euicc_public_key  BYTEA,
    iccid             TEXT,
    cc_required       BIGINT NOT NULL DEFAULT 0,
    smdp_signature2   BYTEA,
    euicc_otpk        BYTEA
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

CREATE TABLE callbacks (
    id               BIGSERIAL PRIMARY KEY,
    operator         TEXT NOT NULL,
    iccid            TEXT NOT NULL,
    eid              TEXT,
    profile_type     TEXT NOT NULL,
    point            BIGINT NOT NULL,
    failure_subject  TEXT,
    failure_reason   TEXT,
    result_data      BYTEA,
    event_at         BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    delivered_at     BIGINT,
    last_error       TEXT
);
CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE notifications (
    id           BIGSERIAL PRIMARY KEY,
    seq_number   BIGINT NOT NULL,
    operation    TEXT NOT NULL,
    iccid        TEXT,
    eid          TEXT,
    address      TEXT NOT NULL,
    raw          BYTEA NOT NULL,
    received_at  BIGINT NOT NULL
);

CREATE TABLE es2_calls (
    operator      TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    function      TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    response      TEXT,
    started_at    BIGINT NOT NULL,
    PRIMARY KEY (operator, call_id)
);
