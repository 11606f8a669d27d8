-- Cron entries under an operator's control (docs/operations/cron.md, "Pausing an
-- entry"). The pause lives here, not in a node's memory, so every node honours it
-- and it survives restarts.

ALTER TABLE heartbeat.schedule_state
    -- Set while the entry is paused; null when it runs.
    ADD COLUMN IF NOT EXISTS paused_at           timestamptz,
    -- An optional end of the pause: at this time the entry runs again by itself.
    ADD COLUMN IF NOT EXISTS paused_until        timestamptz,
    -- True when this pause paused the `job:<kind>` heartbeat (it was not paused by
    -- a user before), so a resume un-pauses only what the pause paused.
    ADD COLUMN IF NOT EXISTS paused_heartbeat    boolean NOT NULL DEFAULT false,
    -- Fire times skipped during the current (or last) pause, counted once across
    -- nodes: a node counts a fire time only if it is later than the last counted.
    ADD COLUMN IF NOT EXISTS paused_missed       bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS paused_last_counted timestamptz;
