-- Segments and audit cuts: the two daily snapshot jobs (DESIGN §4).
-- Both read heartbeat.event (created by 0004_metrics.sql) only at run time, so
-- nothing here depends on it.

-- One row per (day, client): the client's tier that day. A rerun on the same day
-- deletes and re-inserts the day's rows in one transaction, so a reader sees the
-- old day or the new one, never a mix.
CREATE TABLE IF NOT EXISTS heartbeat.client_segment_snapshot (
    snapshot_date date NOT NULL,
    client_id     text NOT NULL,
    tier          text NOT NULL CHECK (tier IN ('top', 'mid', 'micro')),
    -- The activity score over the window, and its competition rank (1 = most
    -- active; equal scores share a rank).
    score         double precision NOT NULL,
    rank          integer NOT NULL CHECK (rank >= 1),
    window_days   integer NOT NULL CHECK (window_days >= 1),
    computed_at   timestamptz NOT NULL,
    PRIMARY KEY (snapshot_date, client_id)
);

-- A client's tier history, newest first.
CREATE INDEX IF NOT EXISTS client_segment_snapshot_client
    ON heartbeat.client_segment_snapshot (client_id, snapshot_date DESC);

-- Mirror of the cut files on disk (sql/cuts/<cut_id>.sql), synced by the audit
-- job's first phase. A row whose file is gone is deleted with its snapshots.
CREATE TABLE IF NOT EXISTS heartbeat.audit_cut_registry (
    cut_id       text PRIMARY KEY CHECK (cut_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    -- Window labels as written in the header (`24h`, `7d`), in header order.
    windows      text[] NOT NULL CHECK (cardinality(windows) >= 1),
    query        text NOT NULL,
    -- sha256 of the whole file: a changed file is a changed cut.
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    synced_at    timestamptz NOT NULL DEFAULT now()
);

-- The latest result of each (cut, window), as JSON rows.
CREATE TABLE IF NOT EXISTS heartbeat.audit_cut_snapshot (
    cut_id       text NOT NULL REFERENCES heartbeat.audit_cut_registry (cut_id) ON DELETE CASCADE,
    window_label text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    -- The query's column names in order (jsonb objects do not keep key order),
    -- and its rows as a JSON array of objects (column name → value).
    columns      text[] NOT NULL,
    payload      jsonb NOT NULL,
    row_count    integer NOT NULL,
    -- The registry content_hash this snapshot was computed from; differs from the
    -- registry's once the file changed and the snapshot has not been redone yet.
    content_hash text NOT NULL,
    duration_ms  integer NOT NULL,
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (cut_id, window_label)
);
