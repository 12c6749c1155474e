-- One IMSI, one profile. The IMSI of a profile is kept beside its
-- personalisation, under a unique index: an import that would give an IMSI
-- to a second profile is refused (also when two instances import at once).
-- Profiles stored before this migration get their IMSI from the stored
-- personalisation; where an earlier import already gave one IMSI to several
-- profiles, only the lowest ICCID keeps it in this column.
ALTER TABLE profiles ADD COLUMN imsi TEXT;
UPDATE profiles SET imsi = first.imsi
FROM (
    SELECT DISTINCT ON (imsi) iccid, imsi
    FROM (
        SELECT iccid, (personalisation::jsonb) ->> 'imsi' AS imsi
        FROM profiles
        WHERE personalisation LIKE '{%'
    ) stored
    WHERE imsi IS NOT NULL
    ORDER BY imsi, iccid
) first
WHERE profiles.iccid = first.iccid;
CREATE UNIQUE INDEX profiles_by_imsi ON profiles(imsi) WHERE imsi IS NOT NULL;
