-- Notification channels (docs/notifications.md). A webhook becomes a channel of
-- kind `webhook`, keeping its id, so `/api/webhooks` stays an alias over the same
-- rows, and the alert outbox has one shape: one row per (event, channel).

CREATE TABLE heartbeat.channel (
    channel_id            uuid PRIMARY KEY,
    project_id            uuid NOT NULL REFERENCES heartbeat.project ON DELETE CASCADE,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- `webhook`, `http`, `email` or a preset name; checked by the daemon, which
    -- knows each kind's config.
    kind                  text NOT NULL,
    config                jsonb NOT NULL DEFAULT '{}',
    -- While a heartbeat stays down, a `reminder` goes out at this interval.
    repeat_every_seconds  integer CHECK (repeat_every_seconds > 0),
    -- A muted channel gets no new alerts; it is kept with its history.
    muted                 boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX channel_project_idx ON heartbeat.channel (project_id, created_at);

INSERT INTO heartbeat.channel (channel_id, project_id, name, kind, config, created_at)
SELECT webhook_id, project_id, 'webhook', 'webhook',
       jsonb_build_object('url', url)
       || CASE WHEN secret IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('secret', secret) END,
       created_at
FROM heartbeat.webhook;

-- The outbox now names its channel, its heartbeat and its event. Reminders and
-- tests have no flip of their own: a reminder carries the down flip it repeats
-- and its interval number, a test neither.
ALTER TABLE heartbeat.alert DROP CONSTRAINT alert_webhook_id_fkey;
ALTER TABLE heartbeat.alert RENAME COLUMN webhook_id TO channel_id;
ALTER TABLE heartbeat.alert ADD FOREIGN KEY (channel_id)
    REFERENCES heartbeat.channel ON DELETE CASCADE;
ALTER TABLE heartbeat.alert ALTER COLUMN flip_id DROP NOT NULL;
ALTER TABLE heartbeat.alert
    ADD COLUMN heartbeat_id uuid REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    ADD COLUMN event text NOT NULL DEFAULT 'down'
        CHECK (event IN ('down', 'up', 'reminder', 'test')),
    -- 0 for the transition itself, n for the reminder after n intervals.
    ADD COLUMN reminder integer NOT NULL DEFAULT 0,
    -- Requests of a multi-request delivery (comment, then close) already done,
    -- so a retry does not repeat them.
    ADD COLUMN steps_done integer NOT NULL DEFAULT 0;
UPDATE heartbeat.alert
SET event = payload->>'event', heartbeat_id = (payload->'heartbeat'->>'id')::uuid;
ALTER TABLE heartbeat.alert ALTER COLUMN event DROP DEFAULT;

-- One alert per transition (and per reminder interval) per channel, whichever
-- node writes it.
CREATE UNIQUE INDEX alert_once_idx ON heartbeat.alert (flip_id, channel_id, reminder)
    WHERE flip_id IS NOT NULL;
CREATE INDEX alert_channel_idx ON heartbeat.alert (channel_id, alert_id);
CREATE INDEX alert_pair_idx ON heartbeat.alert (channel_id, heartbeat_id, alert_id)
    WHERE state = 'pending';

DROP TABLE heartbeat.webhook;

-- Every delivery attempt with its outcome.
CREATE TABLE heartbeat.delivery_attempt (
    alert_id     bigint NOT NULL REFERENCES heartbeat.alert ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    duration_ms  integer NOT NULL,
    -- The HTTP status, or the SMTP reply code.
    status       integer,
    error        text,
    PRIMARY KEY (alert_id, attempt)
);

-- What a channel opened for a heartbeat and must close later: the issue number
-- an issue tracker answered with.
CREATE TABLE heartbeat.channel_issue (
    channel_id    uuid NOT NULL REFERENCES heartbeat.channel ON DELETE CASCADE,
    heartbeat_id  uuid NOT NULL REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    reference     text NOT NULL,
    opened_at     timestamptz NOT NULL,
    PRIMARY KEY (channel_id, heartbeat_id)
);

-- Which channels a heartbeat alerts: NULL for every channel of its project, else
-- the listed ones (an empty list: none).
ALTER TABLE heartbeat.heartbeat ADD COLUMN channels uuid[];
