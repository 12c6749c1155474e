-- The eIM (SGP.32): one row per associated device holding its whole record
-- (association, counter, queue, profiles) as JSON, rewritten by
-- compare-and-set on `version`; results stored once per (eid, item_id);
-- the open items' eIM transaction ids, to find the device of a result that
-- names none; profile notifications kept once per (eid, seq_number).
-- Times are Unix milliseconds.

CREATE TABLE eim_devices (
    eid         TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    record      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE eim_transactions (
    transaction_id  BLOB PRIMARY KEY,
    eid             TEXT NOT NULL REFERENCES eim_devices(eid)
);
CREATE INDEX eim_transactions_eid ON eim_transactions (eid);

CREATE TABLE eim_results (
    eid          TEXT NOT NULL,
    item_id      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    counter      INTEGER,
    seq_number   INTEGER,
    trust        TEXT,
    outcome      TEXT NOT NULL,
    der          BLOB NOT NULL,
    read_as      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (eid, item_id)
);
CREATE INDEX eim_results_counter ON eim_results (eid, counter);

CREATE TABLE eim_notifications (
    eid          TEXT NOT NULL,
    seq_number   INTEGER NOT NULL,
    der          BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (eid, seq_number)
);

-- Indirect downloads relayed by the eIM: the SM-DP+ of each ES9+
-- transaction id, so that any instance relays the later steps.
CREATE TABLE eim_relay_sessions (
    transaction_id  TEXT PRIMARY KEY,
    smdp_address    TEXT NOT NULL,
    eid             TEXT,
    created_at      INTEGER NOT NULL
);
