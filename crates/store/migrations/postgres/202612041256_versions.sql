-- Compare-and-set commits: every profile and session row carries a version,
-- and a commit rewrites a row only if it is still at the version the step
-- read. Sessions keep the data of their phase: the challenges and the agreed
-- CI until the eUICC is authenticated, then its binding (so those columns
-- may be empty).

ALTER TABLE profiles ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ALTER COLUMN euicc_challenge DROP NOT NULL;
ALTER TABLE sessions ALTER COLUMN server_challenge DROP NOT NULL;
ALTER TABLE sessions ALTER COLUMN ci_key_id DROP NOT NULL;
