-- When the secrets (K, OPc, codes, ADM) of an installed profile were purged
-- from its personalisation (the ICCID and IMSI stay); NULL while kept.
ALTER TABLE profiles ADD COLUMN secrets_purged_at BIGINT;
CREATE INDEX profiles_secrets_to_purge ON profiles(updated_at)
    WHERE state = 'installed' AND secrets_purged_at IS NULL;
