-- Many nodes, one flight (DESIGN §6). Job state is memory-like: UNLOGGED tables
-- vanish with a PostgreSQL crash, just as a daemon's memory does with a restart.

-- The job each node runs (and recently ran), so any node can coalesce onto it and
-- answer its status. A 'running' row whose lane lock is free belongs to a dead node.
CREATE UNLOGGED TABLE heartbeat.cluster_job (
    job_id           uuid PRIMARY KEY,
    lane             text NOT NULL,
    node             text NOT NULL,
    state            text NOT NULL,
    job              jsonb NOT NULL,
    -- requests other nodes coalesced onto this job
    extra_requests   integer NOT NULL DEFAULT 0,
    -- set by any node's cancel endpoint; the owner polls it
    cancel_requested boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cluster_job_lane_state ON heartbeat.cluster_job (lane, state);

-- Each lane's single queued follow-up, shared by every node. Whoever holds the
-- lane lock when the running job ends (or the janitor, if nobody does) runs it,
-- adopting its id.
CREATE UNLOGGED TABLE heartbeat.cluster_queue (
    lane        text PRIMARY KEY,
    job_id      uuid NOT NULL,
    scope       jsonb NOT NULL,
    trigger     text NOT NULL,
    requests    integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Scope union: "all" absorbs; lists union, sorted and distinct.
CREATE FUNCTION heartbeat.scope_union(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN a = '"all"'::jsonb OR b = '"all"'::jsonb THEN '"all"'::jsonb
        ELSE (SELECT coalesce(jsonb_agg(x ORDER BY x), '[]'::jsonb)
              FROM (SELECT jsonb_array_elements_text(a) AS x
                    UNION
                    SELECT jsonb_array_elements_text(b)) s)
    END
$$;

-- Once-only ticks: the first node to claim (lane, scheduled_at) runs the tick.
-- scheduled_at is the schedule's nominal time, identical on every node whatever
-- its clock skew. Logged: a claim survives restarts so catch-up runs once too.
CREATE TABLE heartbeat.tick_claim (
    lane          text NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    node          text NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lane, scheduled_at)
);

-- The diagnostic probe body (jobs.probe_body_ms) records each run's interval here,
-- from inside its fenced transaction: an overlap detector for the lane locks.
CREATE TABLE heartbeat.job_probe (
    job_id       uuid PRIMARY KEY,
    lane         text NOT NULL,
    node         text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL
);
