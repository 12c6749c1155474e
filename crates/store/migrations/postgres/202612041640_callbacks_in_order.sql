-- One order's callbacks are leased oldest first, one at a time: a callback
-- waits while an earlier undelivered one of the same profile exists. This
-- index answers that check.
CREATE INDEX callbacks_pending_by_iccid ON callbacks(iccid, id) WHERE delivered_at IS NULL;
