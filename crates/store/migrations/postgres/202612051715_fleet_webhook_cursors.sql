-- Operator webhook delivery, shared by every instance on the database: per
-- endpoint the last decision number it acknowledged, the instance holding
-- the delivery lease (one sender at a time) and the retry backoff.
-- Times are ms since the Unix epoch.
CREATE TABLE fleet_webhook_cursors (
    endpoint         TEXT PRIMARY KEY,
    delivered_seq    BIGINT NOT NULL,
    failures         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    holder           TEXT,
    lease_until      BIGINT NOT NULL,
    last_error       TEXT
);
