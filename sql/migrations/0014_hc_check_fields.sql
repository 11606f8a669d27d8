-- The healthchecks.io check fields Heartbeat has no equivalent of
-- (docs/healthchecks-compat.md): accepted by its Management API, stored and
-- returned as given, without effect on monitoring.
ALTER TABLE heartbeat.heartbeat
    ADD COLUMN hc_tags text NOT NULL DEFAULT '',
    ADD COLUMN hc_desc text NOT NULL DEFAULT '',
    ADD COLUMN hc_methods text NOT NULL DEFAULT '',
    ADD COLUMN hc_manual_resume boolean NOT NULL DEFAULT false,
    -- "*", "" or the comma list the check was given.
    ADD COLUMN hc_channels text NOT NULL DEFAULT '*',
    -- E-mail subjects and keyword filters, by healthchecks.io's field names.
    ADD COLUMN hc_extra jsonb NOT NULL DEFAULT '{}';
