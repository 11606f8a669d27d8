-- Dead man's switch: project keys, heartbeats, pings, flips, webhooks, alert outbox.

-- The built-in heartbeats of the daemon's own jobs (`job:recompute`, ...) live here.
INSERT INTO heartbeat.project (project_id, name)
VALUES ('00000000-0000-0000-0000-000000000002', 'system')
ON CONFLICT DO NOTHING;

-- Project API keys. Only a SHA-256 of the key is kept: keys are 192 random bits, so
-- a fast hash is enough, and a leaked table gives nothing to replay.
CREATE TABLE heartbeat.api_key (
    key_id      uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES heartbeat.project ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('read_write', 'read_only')),
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE heartbeat.heartbeat (
    heartbeat_id       uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES heartbeat.project ON DELETE CASCADE,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token              text NOT NULL UNIQUE,
    -- Either a period or a cron schedule (with its time zone); grace applies to both.
    period_seconds     integer CHECK (period_seconds > 0),
    schedule           text,
    tz                 text NOT NULL DEFAULT 'UTC',
    grace_seconds      integer NOT NULL CHECK (grace_seconds >= 0),
    paused             boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Set when a paused heartbeat is resumed: the next ping is expected relative to it.
    resumed_at         timestamptz,
    last_ping_at       timestamptz,
    last_ping_kind     text,
    -- The last success or failure (start and log pings are not signals).
    last_signal_at     timestamptz,
    last_signal_failed boolean NOT NULL DEFAULT false,
    -- A start not yet followed by a success or failure.
    started_at         timestamptz,
    -- The status as of the last flip; the API computes the live one from time.
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'up', 'down', 'paused')),
    -- When the deadline loop must look at this row again: the instant it goes down,
    -- or a past instant when a ping needs a flip evaluated. NULL: nothing to watch.
    deadline           timestamptz,
    -- Pings get consecutive numbers so trimming to the most recent N is one range.
    ping_seq           bigint NOT NULL DEFAULT 0,
    CHECK ((period_seconds IS NULL) <> (schedule IS NULL)),
    UNIQUE (project_id, name)
);

CREATE INDEX heartbeat_deadline_idx ON heartbeat.heartbeat (deadline)
    WHERE deadline IS NOT NULL;
CREATE INDEX heartbeat_project_idx ON heartbeat.heartbeat (project_id, name);

CREATE TABLE heartbeat.ping (
    heartbeat_id  uuid NOT NULL REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    seq           bigint NOT NULL,
    at            timestamptz NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('success', 'fail', 'start', 'log')),
    exit_code     integer,
    rid           uuid,
    duration_ms   bigint,
    source        text,
    user_agent    text,
    body          text,
    PRIMARY KEY (heartbeat_id, seq)
);

CREATE INDEX ping_rid_idx ON heartbeat.ping (heartbeat_id, rid) WHERE rid IS NOT NULL;

-- Every change of the stored status, at the instant it happened (not when noticed).
CREATE TABLE heartbeat.flip (
    flip_id       bigserial PRIMARY KEY,
    heartbeat_id  uuid NOT NULL REFERENCES heartbeat.heartbeat ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    from_status   text NOT NULL,
    to_status     text NOT NULL,
    detected_at   timestamptz NOT NULL
);

CREATE INDEX flip_heartbeat_idx ON heartbeat.flip (heartbeat_id, flip_id);

CREATE TABLE heartbeat.webhook (
    webhook_id  uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES heartbeat.project ON DELETE CASCADE,
    url         text NOT NULL,
    secret      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per (flip, webhook), written in the flip's transaction, so an
-- alert exists exactly when its flip does and survives restarts until delivered.
CREATE TABLE heartbeat.alert (
    alert_id         bigserial PRIMARY KEY,
    flip_id          bigint NOT NULL REFERENCES heartbeat.flip ON DELETE CASCADE,
    webhook_id       uuid NOT NULL REFERENCES heartbeat.webhook ON DELETE CASCADE,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    -- 'pending' until delivered or given up on.
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    delivered_at     timestamptz,
    last_status      integer,
    last_error       text
);

CREATE INDEX alert_due_idx ON heartbeat.alert (next_attempt_at) WHERE state = 'pending';
