-- Metrics: ingested events, source cursors, the metric registry and computed values.

-- Every ingest transaction takes one number from this sequence and stamps it on the
-- rows it inserts, so compute can find "events ingested since my last run" with an
-- index range scan instead of comparing clocks.
CREATE SEQUENCE IF NOT EXISTS heartbeat.ingest_batch_seq;

-- One row per source event. The key is the source's own id, so ingesting the same
-- page twice changes nothing (ON CONFLICT DO NOTHING keeps the first batch stamp).
CREATE TABLE IF NOT EXISTS heartbeat.event (
    source      text NOT NULL,
    event_id    text NOT NULL,
    occurred_at timestamptz NOT NULL,
    client_id   text NOT NULL,
    name        text NOT NULL,
    value       double precision NOT NULL DEFAULT 1,
    batch_id    bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
-- Metric queries filter by event name and bucket range and aggregate value: with
-- value included, counts and sums are index-only scans.
CREATE INDEX IF NOT EXISTS event_name_occurred_at ON heartbeat.event (name, occurred_at) INCLUDE (value);
CREATE INDEX IF NOT EXISTS event_occurred_at ON heartbeat.event (occurred_at);
-- "Which buckets did new events touch": a range scan over recent batches.
CREATE INDEX IF NOT EXISTS event_batch_id ON heartbeat.event (batch_id);

-- Where each source stopped. Advanced in the same transaction as the rows it covers.
CREATE TABLE IF NOT EXISTS heartbeat.source_cursor (
    source          text PRIMARY KEY,
    cursor          text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    last_error      text
);

-- Synced from sql/metrics/*.sql at each recompute. A removed file's metric is
-- retired (retired_at set), never deleted, so its history stays readable.
CREATE TABLE IF NOT EXISTS heartbeat.metric_registry (
    metric_id        text PRIMARY KEY CHECK (metric_id ~ '^[a-z0-9_]{1,64}$'),
    title            text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('counter', 'gauge', 'ratio', 'rolling_stat')),
    grain            text NOT NULL CHECK (grain IN ('hour', 'day')),
    description      text NOT NULL DEFAULT '',
    -- sha256 of the file; a changed definition recomputes the whole history.
    definition_hash  text NOT NULL,
    -- Highest ingest batch whose events are reflected in metric_value.
    computed_batch   bigint NOT NULL DEFAULT 0,
    -- Last bucket computed by backfill; NULL: never computed (or redefined).
    computed_through timestamptz,
    computed_at      timestamptz,
    benchmark_mean   double precision,
    benchmark_stddev double precision,
    benchmark_points integer,
    benchmark_at     timestamptz,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz
);

CREATE TABLE IF NOT EXISTS heartbeat.metric_value (
    metric_id   text NOT NULL REFERENCES heartbeat.metric_registry (metric_id),
    bucket      timestamptz NOT NULL,
    value       double precision,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_id, bucket)
);
