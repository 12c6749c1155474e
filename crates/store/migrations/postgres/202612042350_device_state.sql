-- The profile's state on the device after its order completed, as the
-- device's notifications last reported it (enabled, disabled, deleted),
-- with the eUICC sequence number of that notification (an older or
-- repeated one changes nothing) and when it arrived.
ALTER TABLE profiles ADD COLUMN device_state TEXT;
ALTER TABLE profiles ADD COLUMN device_seq BIGINT;
ALTER TABLE profiles ADD COLUMN device_at BIGINT;
