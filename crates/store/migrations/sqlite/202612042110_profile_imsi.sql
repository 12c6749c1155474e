-- One IMSI, one profile. The IMSI of a profile is kept beside its
-- personalisation, under a unique index: an import that would give an IMSI
-- to a second profile is refused (also when two instances import at once).
-- Profiles stored before this migration get their IMSI from the stored
-- personalisation; where an earlier import already gave one IMSI to several
-- profiles, only the lowest ICCID keeps it in this column (the others are
-- left as they are, and are what `ferrosim profiles list` shows to fix).
ALTER TABLE profiles ADD COLUMN imsi TEXT;
UPDATE profiles SET imsi = json_extract(personalisation, '$.imsi')
WHERE json_valid(personalisation)
  AND NOT EXISTS (
      SELECT 1 FROM profiles other
      WHERE json_valid(other.personalisation)
        AND json_extract(other.personalisation, '$.imsi') = json_extract(profiles.personalisation, '$.imsi')
        AND other.iccid < profiles.iccid
  );
CREATE UNIQUE INDEX profiles_by_imsi ON profiles(imsi) WHERE imsi IS NOT NULL;
