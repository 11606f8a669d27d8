-- Scheduler: each cron-table entry's last success and last tick, so a restart
-- knows what it missed (catch-up) and `heartbeat schedule` can show it.
-- Keyed by entry name; rows of entries removed from the config are harmless.

CREATE TABLE IF NOT EXISTS heartbeat.schedule_state (
    entry             text PRIMARY KEY,
    kind              text NOT NULL,
    -- When the last successful job of this entry's kind with scope "all" finished
    -- (any trigger: a user's full refresh makes the data as fresh as a tick).
    last_success_at   timestamptz,
    last_success_job  uuid,
    -- The scheduled time of the last tick submitted, and the job that served it.
    last_tick_at      timestamptz,
    last_tick_job     uuid,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
