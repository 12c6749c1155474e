-- Several ES2+ tokens per operator, each with a name, so a token can be
-- rotated without downtime: add a new one, move the clients, revoke the old
-- one. Only the SHA-256 of each token is kept; a revoked token keeps its row
-- (name, times) for the record. The token `ferrosim operator add` and
-- `rotate-token` issue is the one named `default` (also kept in
-- operators.token_hash, as before); existing operators' tokens become it.
CREATE TABLE operator_tokens (
    operator    TEXT NOT NULL REFERENCES operators(id),
    name        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (operator, name)
);
INSERT INTO operator_tokens (operator, name, token_hash, created_at)
SELECT id, 'default', token_hash, 0 FROM operators;
