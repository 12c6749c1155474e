-- Activation telemetry (ferrosim-telemetry events), append-only, purged by
-- retention. `at` is UTC milliseconds; `activation` the correlation id (a
-- u64 stored bit for bit as a signed 64-bit integer); `device` the EID;
-- dimensions as text (names, not the in-process symbols); `payload` the
-- event kind as its JSON record (ferrosim_telemetry::record::KindRecord).
-- `id` keeps the arrival order of events stamped at the same instant.
CREATE TABLE telemetry_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    activation    INTEGER,
    device        TEXT NOT NULL,
    source        TEXT NOT NULL,
    carrier       TEXT,
    smdp          TEXT,
    vendor        TEXT,
    model         TEXT,
    firmware      TEXT,
    device_group  TEXT,
    rollout       TEXT,
    wave          INTEGER,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL
);
CREATE INDEX telemetry_events_at ON telemetry_events(at);
CREATE INDEX telemetry_events_activation ON telemetry_events(activation);
CREATE INDEX telemetry_events_device_at ON telemetry_events(device, at);
CREATE INDEX telemetry_events_carrier_at ON telemetry_events(carrier, at);
