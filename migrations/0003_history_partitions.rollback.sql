-- Back to one unpartitioned quotes table keyed on the id (0002's layout), keeping every
-- quote (of ids stored at several venue times, the earliest); the rollup is dropped.
CREATE TABLE quotes_unpartitioned (
    id          text        CONSTRAINT quotes_unpartitioned_pkey PRIMARY KEY,
    venue       text        NOT NULL,
    direction   text        NOT NULL,
    value       numeric     NOT NULL CONSTRAINT quotes_value_check CHECK (value > 0),
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    derived_from jsonb
);

INSERT INTO quotes_unpartitioned
SELECT id, venue, direction, value, ts, received_at, quote_legs_out(derived_from)
FROM quotes
ORDER BY ts, id
ON CONFLICT (id) DO NOTHING;

DROP TABLE quotes_1m;
DROP TABLE quotes;
DROP FUNCTION quote_legs_in(jsonb);
DROP FUNCTION quote_legs_out(json);

ALTER TABLE quotes_unpartitioned RENAME TO quotes;
ALTER INDEX quotes_unpartitioned_pkey RENAME TO quotes_pkey;
CREATE INDEX quotes_direction_ts ON quotes (direction, ts);
CREATE INDEX quotes_ts ON quotes (ts);
