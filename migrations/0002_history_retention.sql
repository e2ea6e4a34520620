-- depends: 0001_history
-- Retention deletes by time; switches are stored idempotently (one row per switch, even
-- when the history writer sees the same rates.latest records again after a restart).

CREATE INDEX quotes_ts ON quotes (ts);

ALTER TABLE switches
    ADD CONSTRAINT switches_once UNIQUE NULLS NOT DISTINCT (direction, at, to_venue);
