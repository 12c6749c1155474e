-- Data keys of the profile secrets sealed at rest (ferrosim-secrets): each
-- stored wrapped (AES-256-GCM, hex) by the key-encryption key, which is
-- never in the database. The newest seals new values; the older ones open
-- the rows not yet re-sealed by `ferrosim keys rotate`.
CREATE TABLE data_keys (
    id BIGINT PRIMARY KEY,
    wrapped TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
