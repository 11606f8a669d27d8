-- Each published job carries its numbered event log (docs/api.md, "Job events"),
-- so a node that does not own a job streams the owner's events under the owner's
-- ids, and a reconnect with Last-Event-ID resumes on any node. The table is
-- UNLOGGED like the rest of the shared job state: jobs never outlive a restart.
ALTER TABLE heartbeat.cluster_job ADD COLUMN events jsonb NOT NULL DEFAULT '[]';
