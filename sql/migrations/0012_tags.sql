-- Free-form tags on heartbeats (docs/api.md, "Tags"): grouping and filtering
-- (`GET /api/heartbeats?tag=`, `heartbeat status --tag`). Validated by the API
-- (monitor::heartbeat::Tags); the GIN index serves `tags @> ARRAY[tag]`.

ALTER TABLE heartbeat.heartbeat
    ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}';

CREATE INDEX IF NOT EXISTS heartbeat_tags_idx ON heartbeat.heartbeat USING gin (tags);
