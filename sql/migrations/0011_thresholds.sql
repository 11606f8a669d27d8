-- Failure and recovery thresholds (docs/monitoring.md, "Thresholds"): a
-- heartbeat goes down at its failure_threshold-th failure in a row and up again
-- after recovery_threshold successes in a row. Failures are fail pings (and
-- non-zero exit codes) and missed deadlines; the streaks and the state they lead
-- to are kept on the row, so the status at read and the deadline loop agree.

ALTER TABLE heartbeat.heartbeat
    ADD COLUMN IF NOT EXISTS failure_threshold  integer NOT NULL DEFAULT 1
        CHECK (failure_threshold BETWEEN 1 AND 100),
    ADD COLUMN IF NOT EXISTS recovery_threshold integer NOT NULL DEFAULT 1
        CHECK (recovery_threshold BETWEEN 1 AND 100),
    -- Failures in a row (pings and missed deadlines counted so far).
    ADD COLUMN IF NOT EXISTS fail_streak        integer NOT NULL DEFAULT 0,
    -- Successes in a row.
    ADD COLUMN IF NOT EXISTS ok_streak          integer NOT NULL DEFAULT 0,
    -- Whether the streaks have taken it down (and not yet back up).
    ADD COLUMN IF NOT EXISTS failing            boolean NOT NULL DEFAULT false,
    -- When `failing` last changed: a flip is dated here.
    ADD COLUMN IF NOT EXISTS failing_since      timestamptz,
    -- The expected time of the last missed deadline counted: the next expectation
    -- runs from it, so each missed period or fire time counts once.
    ADD COLUMN IF NOT EXISTS missed_at          timestamptz;

-- Rows from before: a failed last signal was one failure that took it down.
UPDATE heartbeat.heartbeat
SET failing = true, fail_streak = 1, failing_since = last_signal_at
WHERE last_signal_failed AND last_signal_at IS NOT NULL;

-- Folds one batch's signals into the streaks. `runs` is the batch's signals for
-- one heartbeat as runs in arrival order: +n for n successes, -n for n failures.
-- Returns {fail_streak, ok_streak, failing (0 or 1)}. The first run extends the
-- stored streak of its kind; a run that reaches its threshold sets `failing`, so
-- the last such run decides it.
CREATE OR REPLACE FUNCTION heartbeat.fold_signals(
    fail integer, ok integer, is_failing boolean,
    failure_threshold integer, recovery_threshold integer, runs integer[])
RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    r integer;
BEGIN
    FOREACH r IN ARRAY runs LOOP
        IF r > 0 THEN
            ok := ok + r;
            fail := 0;
            IF ok >= recovery_threshold THEN is_failing := false; END IF;
        ELSE
            fail := fail - r;
            ok := 0;
            IF fail >= failure_threshold THEN is_failing := true; END IF;
        END IF;
    END LOOP;
    RETURN ARRAY[fail, ok, CASE WHEN is_failing THEN 1 ELSE 0 END];
END
$$;
