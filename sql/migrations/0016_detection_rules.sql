-- Detection rules beyond period and grace (docs/monitoring.md): a start margin
-- for schedule heartbeats, a maximum and a minimum run time, a minimum interval
-- between successes, and the cause of every status change. The ping statement
-- classifies each ping (`heartbeat.fold_pings`); the deadline loop counts the
-- missed starts and timed-out runs (`monitor::status::evaluate`).

ALTER TABLE heartbeat.heartbeat
    -- Schedule heartbeats: a start or success must arrive within this many
    -- seconds of a fire time, else the fire is `missed`; a success earlier than
    -- this before its fire time is `early`. NULL: off.
    ADD COLUMN IF NOT EXISTS start_margin_seconds integer
        CHECK (start_margin_seconds BETWEEN 1 AND 31622400),
    -- A started run that has not finished this many seconds after its start is a
    -- `timeout`, each `rid` on its own clock. NULL: off (an unfinished start is
    -- then timed by the grace, as before).
    ADD COLUMN IF NOT EXISTS max_runtime_seconds integer
        CHECK (max_runtime_seconds BETWEEN 1 AND 31622400),
    -- A success sooner than this after the previous success is `early`. NULL: off.
    ADD COLUMN IF NOT EXISTS min_interval_seconds integer
        CHECK (min_interval_seconds BETWEEN 1 AND 31622400),
    -- A run that finishes sooner than this after its start is `too_fast`. NULL: off.
    ADD COLUMN IF NOT EXISTS min_runtime_seconds integer
        CHECK (min_runtime_seconds BETWEEN 1 AND 31622400),
    -- Runs started with a `rid` and not finished, oldest first, as
    -- [[rid, started_at], ...]; kept only while a run-time rule is on, at most
    -- 100 (the oldest is dropped past that).
    ADD COLUMN IF NOT EXISTS runs jsonb NOT NULL DEFAULT '[]',
    -- The last success ping, for `min_interval_seconds`.
    ADD COLUMN IF NOT EXISTS last_success_at timestamptz,
    -- Schedule heartbeats with a start margin: a success before this instant
    -- (the next fire time less the margin) is `early`. Kept by the deadline
    -- loop, which evaluates a schedule heartbeat after each of its pings.
    ADD COLUMN IF NOT EXISTS early_before timestamptz,
    -- What took it down: fail, missed, timeout, early or too_fast.
    ADD COLUMN IF NOT EXISTS failing_cause text,
    -- The last ping statement's event and reason per ping of its batch (by rank),
    -- for the ping history: a SET sees the old row and RETURNING only the new
    -- one, so the statement hands them to its own ring insert through the row.
    ADD COLUMN IF NOT EXISTS batch_events text[],
    ADD COLUMN IF NOT EXISTS batch_reasons text[];

UPDATE heartbeat.heartbeat SET failing_cause = 'fail' WHERE failing;

-- A ping's detection event (`early`, `too_fast`) and why, in words.
ALTER TABLE heartbeat.ping
    ADD COLUMN IF NOT EXISTS event text,
    ADD COLUMN IF NOT EXISTS reason text;

-- What caused a flip: the event that took it down (fail, missed, timeout, early,
-- too_fast), `success` for a recovery; NULL for pauses and the like.
ALTER TABLE heartbeat.flip ADD COLUMN IF NOT EXISTS cause text;

-- What one ping statement makes of a heartbeat's pings.
DROP TYPE IF EXISTS heartbeat.folded CASCADE;
CREATE TYPE heartbeat.folded AS (
    fail_streak     integer,
    ok_streak       integer,
    failing         boolean,
    failing_since   timestamptz,
    failing_cause   text,
    started_at      timestamptz,
    runs            jsonb,
    last_success_at timestamptz,
    events          text[],
    reasons         text[]
);

-- Folds one batch's pings for one heartbeat `h` (the row before the batch).
-- `last_kind`/`last_at`: its last ping that is not a log; `signal_runs`: its
-- successes and failures as runs (as `fold_signals` takes them); `last_ok`: its
-- last success in the batch; `pings`: every ping of the batch in arrival order,
-- as the JSON text [[kind, at, rid], ...]. With no rule that looks at single pings on, the streaks are
-- `fold_signals`'s and `pings` is not read: the common path stays cheap.
--
-- Otherwise each ping in turn: a start opens a run (a `rid` run in `runs` while a
-- run-time rule is on); a success that comes too soon after the previous success
-- (`min_interval_seconds`) or before `early_before` is `early`, one that ends a
-- run shorter than `min_runtime_seconds` is `too_fast`: both count as failures.
-- A state change is dated at the batch's last signal, as `fold_signals`'s is.
CREATE OR REPLACE FUNCTION heartbeat.fold_pings(
    h heartbeat.heartbeat, last_kind text, last_at timestamptz, signal_runs integer[],
    last_ok timestamptz, pings text)
RETURNS heartbeat.folded LANGUAGE plpgsql STABLE AS $$
DECLARE
    s integer[];
    out heartbeat.folded;
    timed boolean := h.max_runtime_seconds IS NOT NULL OR h.min_runtime_seconds IS NOT NULL;
    p jsonb;
    k text;
    ping_at timestamptz;
    rid text;
    began timestamptz;
    event text;
    reason text;
    fail integer := h.fail_streak;
    ok integer := h.ok_streak;
    failing boolean := h.failing;
    cause text := h.failing_cause;
    started timestamptz := h.started_at;
    runs jsonb := CASE WHEN timed THEN h.runs ELSE '[]'::jsonb END;
    prev_ok timestamptz := h.last_success_at;
    events text[] := '{}';
    reasons text[] := '{}';
BEGIN
    IF NOT timed AND h.min_interval_seconds IS NULL AND h.early_before IS NULL THEN
        s := heartbeat.fold_signals(h.fail_streak, h.ok_streak, h.failing,
                                    h.failure_threshold, h.recovery_threshold,
                                    COALESCE(signal_runs, '{}'));
        out.fail_streak := s[1];
        out.ok_streak := s[2];
        out.failing := s[3] = 1;
        out.failing_since := CASE WHEN out.failing <> h.failing THEN last_at ELSE h.failing_since END;
        out.failing_cause := CASE WHEN out.failing AND NOT h.failing THEN 'fail'
                                  WHEN NOT out.failing THEN NULL ELSE h.failing_cause END;
        out.started_at := CASE last_kind WHEN 'start' THEN last_at WHEN 'success' THEN NULL
                                         WHEN 'fail' THEN NULL ELSE h.started_at END;
        out.runs := '[]'::jsonb;
        out.last_success_at := COALESCE(last_ok, h.last_success_at);
        RETURN out;
    END IF;
    -- Parsed only here: the common path above never pays for it.
    FOR p IN SELECT value FROM jsonb_array_elements(pings::jsonb) LOOP
        k := p->>0;
        ping_at := (p->>1)::timestamptz;
        rid := p->>2;
        event := NULL;
        reason := NULL;
        IF k = 'start' THEN
            IF rid IS NOT NULL AND timed THEN
                runs := COALESCE((SELECT jsonb_agg(e) FROM jsonb_array_elements(runs) e
                                  WHERE e->>0 <> rid), '[]'::jsonb)
                        || jsonb_build_array(jsonb_build_array(rid, ping_at));
                IF jsonb_array_length(runs) > 100 THEN
                    runs := runs - 0;
                END IF;
                -- With a maximum run time each rid has its own clock; the
                -- unfinished-start rule (start + grace) times the latest start only
                -- without one.
                IF h.max_runtime_seconds IS NULL THEN
                    started := ping_at;
                END IF;
            ELSE
                started := ping_at;
            END IF;
        ELSIF k IN ('success', 'fail') THEN
            began := NULL;
            IF rid IS NOT NULL THEN
                IF timed THEN
                    SELECT (e->>1)::timestamptz INTO began FROM jsonb_array_elements(runs) e
                    WHERE e->>0 = rid;
                    runs := COALESCE((SELECT jsonb_agg(e) FROM jsonb_array_elements(runs) e
                                      WHERE e->>0 <> rid), '[]'::jsonb);
                END IF;
                IF h.max_runtime_seconds IS NULL THEN
                    started := NULL;
                END IF;
            ELSE
                began := started;
                started := NULL;
            END IF;
            IF k = 'success' THEN
                IF h.min_runtime_seconds IS NOT NULL AND began IS NOT NULL
                   AND ping_at - began < make_interval(secs => h.min_runtime_seconds) THEN
                    event := 'too_fast';
                    reason := format('ran %s s, less than min_runtime_seconds %s',
                                     round(extract(epoch FROM ping_at - began), 3)::float8,
                                     h.min_runtime_seconds);
                ELSIF h.min_interval_seconds IS NOT NULL AND prev_ok IS NOT NULL
                      AND ping_at - prev_ok < make_interval(secs => h.min_interval_seconds) THEN
                    event := 'early';
                    reason := format('%s s after the previous success, less than min_interval_seconds %s',
                                     round(extract(epoch FROM ping_at - prev_ok), 3)::float8,
                                     h.min_interval_seconds);
                ELSIF h.early_before IS NOT NULL AND ping_at < h.early_before THEN
                    event := 'early';
                    reason := format('%s s before its fire time %s, outside start_margin_seconds %s',
                                     round(extract(epoch FROM
                                         h.early_before + make_interval(secs => h.start_margin_seconds) - ping_at), 3)::float8,
                                     to_char((h.early_before + make_interval(secs => h.start_margin_seconds))
                                             AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                     h.start_margin_seconds);
                END IF;
                prev_ok := ping_at;
            END IF;
            IF k = 'success' AND event IS NULL THEN
                ok := ok + 1;
                fail := 0;
                IF ok >= h.recovery_threshold THEN
                    failing := false;
                    cause := NULL;
                END IF;
            ELSE
                fail := fail + 1;
                ok := 0;
                IF fail >= h.failure_threshold THEN
                    IF NOT failing THEN
                        cause := COALESCE(event, 'fail');
                    END IF;
                    failing := true;
                END IF;
            END IF;
        END IF;
        events := events || event;
        reasons := reasons || reason;
    END LOOP;
    out.fail_streak := fail;
    out.ok_streak := ok;
    out.failing := failing;
    out.failing_since := CASE WHEN failing <> h.failing THEN last_at ELSE h.failing_since END;
    out.failing_cause := cause;
    out.started_at := started;
    out.runs := runs;
    out.last_success_at := prev_ok;
    out.events := events;
    out.reasons := reasons;
    RETURN out;
END
$$;

-- Silences (docs/monitoring.md, "Silences"): while one covers a heartbeat, its
-- status still changes and is recorded, but no alert goes out; one covers a
-- heartbeat, or every heartbeat of the project carrying a tag. Either until a
-- time, or a recurring window: `duration_seconds` from each fire time of `cron`
-- in `tz`.
CREATE TABLE IF NOT EXISTS heartbeat.silence (
    silence_id       uuid PRIMARY KEY,
    project_id       uuid NOT NULL REFERENCES heartbeat.project ON DELETE CASCADE,
    heartbeat_id     uuid REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    tag              text,
    until            timestamptz,
    cron             text,
    duration_seconds integer CHECK (duration_seconds BETWEEN 1 AND 31622400),
    tz               text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((heartbeat_id IS NULL) <> (tag IS NULL)),
    CHECK ((until IS NULL) <> (cron IS NULL)),
    CHECK ((cron IS NULL) = (duration_seconds IS NULL) AND (cron IS NULL) = (tz IS NULL))
);
CREATE INDEX IF NOT EXISTS silence_heartbeat_idx ON heartbeat.silence (heartbeat_id);
CREATE INDEX IF NOT EXISTS silence_project_tag_idx ON heartbeat.silence (project_id, tag);

-- Dependencies (docs/monitoring.md, "Dependencies"): while a parent is down, a
-- child's alerts are withheld (`suppressed`). An alert withheld by a silence or
-- a parent is owed: `held_flip_id` is the down flip whose alert has not gone
-- out, sent once if the heartbeat is still down when nothing withholds it.
ALTER TABLE heartbeat.heartbeat
    ADD COLUMN IF NOT EXISTS parents uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS held_flip_id bigint,
    ADD COLUMN IF NOT EXISTS held_by text;
CREATE INDEX IF NOT EXISTS heartbeat_parents_idx ON heartbeat.heartbeat USING gin (parents);

-- A flip whose alert was withheld: `silenced` or `suppressed`.
ALTER TABLE heartbeat.flip ADD COLUMN IF NOT EXISTS withheld text;
