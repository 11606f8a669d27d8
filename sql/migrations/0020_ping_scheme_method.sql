-- How each ping arrived, for healthchecks.io's ping JSON (`scheme`, `method`;
-- docs/healthchecks-compat.md): `http` or `https`, and `GET`, `HEAD` or `POST`.
-- Nullable: pings kept from before this migration, and the daemon's own job
-- heartbeats (which come through no HTTP request), have neither; the
-- Management API answers them as healthchecks.io's defaults (`http`, `""`).
-- Adding nullable columns rewrites no row.
ALTER TABLE heartbeat.ping
    ADD COLUMN scheme text,
    ADD COLUMN method text;
