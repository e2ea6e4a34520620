-- History of every normalized quote, and of every change of the chosen venue.
-- Rows are keyed on the quote id, so a redelivered quote is stored once.

CREATE TABLE quotes (
    id          text        PRIMARY KEY,
    venue       text        NOT NULL,
    direction   text        NOT NULL,
    value       numeric     NOT NULL CHECK (value > 0),
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    derived_from jsonb
);

CREATE INDEX quotes_direction_ts ON quotes (direction, ts);

CREATE TABLE switches (
    id          bigserial   PRIMARY KEY,
    direction   text        NOT NULL,
    from_venue  text,
    to_venue    text,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL
);

CREATE INDEX switches_direction_at ON switches (direction, at);
