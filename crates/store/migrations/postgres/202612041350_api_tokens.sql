-- API tokens of the REST APIs (eIM, fleet): only the SHA-256 of each
-- token is kept; a scope per token (read-only, operator, admin).
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
