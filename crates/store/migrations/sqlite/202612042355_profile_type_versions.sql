-- Profile-type versions: importing a new package under an existing name
-- (`profile-type import --replace`) adds a version instead of overwriting;
-- every version is kept, and each order keeps the version it was made with
-- (profiles.type_version), so its download gets that package and metadata.
-- profile_types holds the latest version (its number in `version`).
ALTER TABLE profile_types ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE profile_type_versions (
    operator    TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    package     BLOB NOT NULL,
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (operator, name, version),
    FOREIGN KEY (operator, name) REFERENCES profile_types(operator, name)
);
INSERT INTO profile_type_versions (operator, name, version, package, metadata, created_at)
SELECT operator, name, 1, package, metadata, created_at FROM profile_types;
-- Orders placed before versions existed were made with the only version.
ALTER TABLE profiles ADD COLUMN type_version INTEGER;
UPDATE profiles SET type_version = 1 WHERE has_order = 1;
