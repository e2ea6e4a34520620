ALTER TABLE switches DROP CONSTRAINT switches_once;
DROP INDEX quotes_ts;
