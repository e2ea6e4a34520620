-- Back to one unpartitioned quotes table keyed on the id (0002's layout and names), keeping
-- every quote (of an id stored at several venue times, the earliest); the rollup is dropped.
ALTER TABLE quotes RENAME TO quotes_partitioned;
ALTER TABLE quotes_partitioned RENAME CONSTRAINT quotes_pkey TO quotes_partitioned_pkey;

CREATE TABLE quotes (
    id          text        PRIMARY KEY,
    venue       text        NOT NULL,
    direction   text        NOT NULL,
    value       numeric     NOT NULL CONSTRAINT quotes_value_check CHECK (value > 0),
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    derived_from jsonb
);

INSERT INTO quotes
SELECT id, venue, direction, value, ts, received_at, quote_legs_out(derived_from)
FROM quotes_partitioned
ORDER BY ts, id
ON CONFLICT (id) DO NOTHING;

DROP TABLE quotes_partitioned;
DROP TABLE quotes_1m_parts;
DROP TABLE quotes_1m;
DROP FUNCTION quote_legs_in(jsonb);
DROP FUNCTION quote_legs_out(json);

CREATE INDEX quotes_direction_ts ON quotes (direction, ts);
CREATE INDEX quotes_ts ON quotes (ts);
