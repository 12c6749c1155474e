-- `ferrosim order history`: a profile's audit entries, callbacks and
-- device notifications are read by ICCID.
CREATE INDEX audit_log_by_subject ON audit_log(subject, seq);
CREATE INDEX callbacks_by_iccid ON callbacks(iccid, id);
CREATE INDEX notifications_by_iccid ON notifications(iccid, id);
