-- Foundation: the schema every other part builds on.
-- schema_migrations itself is created by the runner before any file is applied.

CREATE TABLE IF NOT EXISTS heartbeat.project (
    project_id  uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every route acts on `default` when no keys are configured (open mode).
INSERT INTO heartbeat.project (project_id, name)
VALUES ('00000000-0000-0000-0000-000000000001', 'default')
ON CONFLICT DO NOTHING;
