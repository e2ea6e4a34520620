-- depends: 0002_history_retention
-- Quotes partitioned by day of venue time, so that retention drops whole days; a compact
-- row (one index, legs as arrays); and quotes_1m, a rollup of every quote per minute,
-- direction and venue, partitioned by month and kept much longer than the quotes.
-- Existing quotes are moved into the new table and rolled up.

-- A leg is stored as [venue, direction, value, ts] (JSON text, without the repeated keys):
-- the writer sends the legs as on the topic, these two functions convert them.
CREATE FUNCTION quote_legs_in(legs jsonb) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (
    SELECT ('[' || string_agg(
        CASE WHEN jsonb_typeof(leg) = 'object'
             THEN format('[%s,%s,%s,%s]', coalesce((leg -> 'venue')::text, 'null'),
                         coalesce((leg -> 'direction')::text, 'null'),
                         coalesce((leg -> 'value')::text, 'null'),
                         coalesce((leg -> 'ts')::text, 'null'))
             ELSE leg::text END,
        ',' ORDER BY n) || ']')::json
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(legs) = 'array' THEN legs END)
         WITH ORDINALITY AS e(leg, n)
);

CREATE FUNCTION quote_legs_out(legs json) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (
    SELECT jsonb_agg(
        CASE WHEN json_typeof(leg) = 'array'
             THEN jsonb_build_object('venue', leg ->> 0, 'direction', leg ->> 1,
                                     'value', leg ->> 2, 'ts', leg ->> 3)
             ELSE leg::jsonb END
        ORDER BY n)
    FROM json_array_elements(CASE WHEN json_typeof(legs) = 'array' THEN legs END)
         WITH ORDINALITY AS e(leg, n)
);

ALTER TABLE quotes RENAME TO quotes_unpartitioned;
ALTER TABLE quotes_unpartitioned DROP CONSTRAINT quotes_pkey;
DROP INDEX quotes_direction_ts;
DROP INDEX quotes_ts;

-- The key includes the partition key (PostgreSQL requires it): a redelivered quote has the
-- same venue time, so it lands in the same partition and conflicts there. Leading with ts
-- keeps the index appended at its right edge (densely packed), and it serves the history
-- pages (direction = ?, ordered by ts, id). Ids compare bytewise (COLLATE "C"), as in Python.
CREATE TABLE quotes (
    id           text COLLATE "C" NOT NULL,
    venue        text        NOT NULL,
    direction    text        NOT NULL,
    value        numeric     NOT NULL CONSTRAINT quotes_value_check CHECK (value > 0),
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    derived_from json,
    CONSTRAINT quotes_pkey PRIMARY KEY (ts, direction, id)
) PARTITION BY RANGE (ts);

-- Rows outside every day's partition (the writer creates them ahead and on demand, so only
-- other writers put rows here); the history writer moves them into their day's partition.
CREATE TABLE quotes_default PARTITION OF quotes DEFAULT;

DO $$
DECLARE
    day timestamptz;
BEGIN
    FOR day IN
        SELECT DISTINCT date_trunc('day', ts, 'UTC') FROM quotes_unpartitioned
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF quotes FOR VALUES FROM (%L) TO (%L)',
            'quotes_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
            day, (day AT TIME ZONE 'UTC' + interval '1 day') AT TIME ZONE 'UTC');
    END LOOP;
END
$$;

INSERT INTO quotes (id, venue, direction, value, ts, received_at, derived_from)
SELECT id, venue, direction, value, ts, received_at, quote_legs_in(derived_from)
FROM quotes_unpartitioned
ORDER BY ts, direction, id;  -- in key order: the index is built densely packed

DROP TABLE quotes_unpartitioned;

-- One row per (minute, direction, venue): open, high, low, close and the number of quotes.
-- open and close are the first and last quotes by (ts, id), the order of the history pages;
-- their times and ids are kept, so bars of one minute made from several batches (in any
-- order) merge into the same values. Fixed-width columns first: less padding.
CREATE TABLE quotes_1m (
    minute      timestamptz NOT NULL,
    open_ts     timestamptz NOT NULL,
    close_ts    timestamptz NOT NULL,
    quote_count integer     NOT NULL CHECK (quote_count > 0),
    direction   text        NOT NULL,
    venue       text        NOT NULL,
    open        numeric     NOT NULL,
    high        numeric     NOT NULL,
    low         numeric     NOT NULL,
    close       numeric     NOT NULL,
    open_id     text COLLATE "C" NOT NULL,
    close_id    text COLLATE "C" NOT NULL,
    CONSTRAINT quotes_1m_pkey PRIMARY KEY (minute, direction, venue)
) PARTITION BY RANGE (minute);

-- The bars of each batch, as the writer stores its quotes (insert only, in the same
-- transaction); merged into quotes_1m once their minute is over, so that a bar is written
-- there once rather than at every batch (updated rows would leave dead versions behind).
CREATE TABLE quotes_1m_parts (LIKE quotes_1m INCLUDING CONSTRAINTS);

CREATE TABLE quotes_1m_default PARTITION OF quotes_1m DEFAULT;

DO $$
DECLARE
    month timestamptz;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', ts, 'UTC') FROM quotes
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF quotes_1m FOR VALUES FROM (%L) TO (%L)',
            'quotes_1m_p' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM'),
            month, (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END
$$;

INSERT INTO quotes_1m (minute, direction, venue, open, high, low, close, quote_count,
                       open_ts, close_ts, open_id, close_id)
SELECT date_trunc('minute', ts, 'UTC'), direction, venue,
       (array_agg(value ORDER BY ts, id))[1], max(value), min(value),
       (array_agg(value ORDER BY ts DESC, id DESC))[1], count(*),
       min(ts), max(ts),
       (array_agg(id ORDER BY ts, id))[1], (array_agg(id ORDER BY ts DESC, id DESC))[1]
FROM quotes
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
