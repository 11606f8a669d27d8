-- Detection rules, follow-ups (docs/monitoring.md; docs/decisions.md §29).

-- 1. A deleted heartbeat leaves its children's `parents`, and children whose
--    down alert was withheld while it was down (`held_flip_id`) are handed to
--    the deadline loop at once, which sends that alert if nothing else holds it
--    (docs/monitoring.md, "Dependencies"). A trigger, so every way of deleting
--    (the API, the healthchecks.io API, a project's cascade, plain SQL) does it.
CREATE OR REPLACE FUNCTION heartbeat.release_children_of_deleted_heartbeats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE heartbeat.heartbeat h SET
        parents = ARRAY(SELECT p FROM unnest(h.parents) p
                        WHERE p NOT IN (SELECT heartbeat_id FROM gone)),
        deadline = CASE WHEN h.held_flip_id IS NOT NULL THEN LEAST(h.deadline, now())
                        ELSE h.deadline END
    WHERE h.parents && ARRAY(SELECT heartbeat_id FROM gone);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS heartbeat_release_children ON heartbeat.heartbeat;
CREATE TRIGGER heartbeat_release_children
    AFTER DELETE ON heartbeat.heartbeat
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION heartbeat.release_children_of_deleted_heartbeats();

-- Parents deleted before this migration leave the lists they were still in.
UPDATE heartbeat.heartbeat h SET
    parents = ARRAY(SELECT p FROM unnest(h.parents) p
                    WHERE EXISTS (SELECT 1 FROM heartbeat.heartbeat q WHERE q.heartbeat_id = p))
WHERE cardinality(h.parents) > 0;

-- 2. A schedule heartbeat's `early` is judged against the fire time after its
--    previous signal, also when several successes come between two passes of
--    the deadline loop. SQL cannot compute a cron schedule's fire times, so the
--    loop stores the next ones (`fire_times`, after the last signal, with every
--    evaluation that stores `early_before`), and the ping statement works out the
--    fire time from them after each success or failure, as
--    `monitor::status::evaluate` does from the schedule. A success past the last
--    stored fire time (more fires between two passes than are stored) is not
--    judged early.
ALTER TABLE heartbeat.heartbeat ADD COLUMN IF NOT EXISTS fire_times timestamptz[];

-- The instant before which a success is `early`, after a signal at `signal`:
-- the fire time after the fire that signal answers (within the margin before
-- it), or after the signal itself, or after a resume, less the margin. NULL
-- when `fires` does not reach that far.
CREATE OR REPLACE FUNCTION heartbeat.early_before_after(
    fires timestamptz[], margin_seconds integer, resumed timestamptz, signal timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    WITH answered AS (
        SELECT min(f) AS fire FROM unnest(fires) f WHERE f > signal
    ), reference AS (
        SELECT GREATEST(CASE WHEN fire - make_interval(secs => margin_seconds) <= signal
                             THEN fire ELSE signal END, resumed) AS at
        FROM answered WHERE fire IS NOT NULL
    )
    SELECT min(f) - make_interval(secs => margin_seconds)
    FROM unnest(fires) f, reference WHERE f > reference.at
$$;

-- `heartbeat.fold_pings` as in migration 0016, but a schedule's `early` is
-- judged against the fire time after the previous signal, worked out from
-- `fire_times` at the start of the batch and again after each of its signals.
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
    -- A success before this is `early` (schedule with a start margin): from
    -- the stored fire times after each signal, else as the loop stored it.
    eb timestamptz := CASE WHEN h.fire_times IS NULL THEN h.early_before
                           ELSE heartbeat.early_before_after(h.fire_times, h.start_margin_seconds,
                                                             h.resumed_at, h.last_signal_at) END;
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
                ELSIF eb IS NOT NULL AND ping_at < eb THEN
                    event := 'early';
                    reason := format('%s s before its fire time %s, outside start_margin_seconds %s',
                                     round(extract(epoch FROM
                                         eb + make_interval(secs => h.start_margin_seconds) - ping_at), 3)::float8,
                                     to_char((eb + make_interval(secs => h.start_margin_seconds))
                                             AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                     h.start_margin_seconds);
                END IF;
                prev_ok := ping_at;
            END IF;
            -- Every signal moves the fire time the next success is judged by.
            IF h.fire_times IS NOT NULL THEN
                eb := heartbeat.early_before_after(h.fire_times, h.start_margin_seconds,
                                                   h.resumed_at, ping_at);
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

-- 3. Detection events the deadline loop counts (`missed`, `timeout`), also those
--    below the failure threshold, which change no status and so have no flip:
--    a ring of 100 slots per heartbeat written in place, as the ping history is
--    (`monitor::event_log`). `event_seq` numbers a heartbeat's events; event
--    `seq` is in slot `seq % 100`.
ALTER TABLE heartbeat.heartbeat ADD COLUMN IF NOT EXISTS event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS heartbeat.detection_event (
    heartbeat_id   uuid NOT NULL REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    slot           integer NOT NULL,
    seq            bigint NOT NULL,
    -- The deadline or run limit that passed.
    at             timestamptz NOT NULL,
    -- missed or timeout.
    event          text NOT NULL,
    -- Why, in words, with the rule's limit.
    reason         text NOT NULL,
    -- The failure streak with this one counted.
    failure_streak integer NOT NULL,
    detected_at    timestamptz NOT NULL,
    PRIMARY KEY (heartbeat_id, slot)
);
