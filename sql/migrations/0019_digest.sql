-- Digests (docs/notifications.md): a channel may carry a cron schedule at which
-- it gets a summary of every heartbeat of its project. `digest_done_at` is the
-- last fire time handled (sent, or skipped while muted); a node writes a digest
-- only by moving it forward, in the digest row's transaction, so one fire time
-- gives one digest however many nodes look, and a restart finds what is owed.
ALTER TABLE heartbeat.channel
    ADD COLUMN digest_schedule text,
    ADD COLUMN digest_tz text NOT NULL DEFAULT 'UTC',
    ADD COLUMN digest_done_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE heartbeat.alert DROP CONSTRAINT alert_event_check;
ALTER TABLE heartbeat.alert ADD CONSTRAINT alert_event_check
    CHECK (event IN ('down', 'up', 'reminder', 'test', 'digest'));

-- The fire time a digest row is for; unique per channel as a second guard.
ALTER TABLE heartbeat.alert ADD COLUMN digest_at timestamptz;
CREATE UNIQUE INDEX alert_digest_once_idx ON heartbeat.alert (channel_id, digest_at)
    WHERE digest_at IS NOT NULL;
