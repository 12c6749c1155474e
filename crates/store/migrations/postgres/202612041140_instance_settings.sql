-- Properties of the SM-DP+ instance itself (its SM-DP+ address, ...),
-- written by `ferrosim init` / `ferrosim serve`; a row `smdp_address` marks
-- a database that holds an instance.
CREATE TABLE instance_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
