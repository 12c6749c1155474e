-- Fleet control (ferrosim-fleet's FleetStore). Records are kept as their
-- JSON form (serde of the ferrosim-fleet types), validated again when read;
-- `version` counts rewrites of a record and makes every update a
-- compare-and-set, so two instances never both decide for one device.
-- Action ids and decision numbers are u64 values below 2^63.
CREATE TABLE fleet_devices (
    eid      TEXT PRIMARY KEY,
    version  BIGINT NOT NULL,
    payload  TEXT NOT NULL
);
CREATE TABLE fleet_rollouts (
    id       BIGINT PRIMARY KEY,
    version  BIGINT NOT NULL,
    payload  TEXT NOT NULL
);
-- The engine state besides devices and rollouts: one row, id 1.
CREATE TABLE fleet_engine (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL,
    payload  TEXT NOT NULL
);
-- Actions issued and not yet answered.
CREATE TABLE fleet_in_flight (
    id       BIGINT PRIMARY KEY,
    device   TEXT NOT NULL,
    payload  TEXT NOT NULL
);
-- The decision log, append-only, by decision number.
CREATE TABLE fleet_decisions (
    seq      BIGINT PRIMARY KEY,
    at       BIGINT NOT NULL,
    device   TEXT,
    rollout  BIGINT,
    payload  TEXT NOT NULL
);
CREATE INDEX fleet_decisions_device ON fleet_decisions(device, seq);
CREATE INDEX fleet_decisions_rollout ON fleet_decisions(rollout, seq);
