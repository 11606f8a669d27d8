-- healthchecks.io's `methods: "POST"` (docs/healthchecks-compat.md;
-- docs/decisions.md §33): a ping to such a heartbeat sent with another HTTP
-- method is kept in the history as an ignored ping, kind `ign` (healthchecks.io's
-- name for it), and changes nothing else. The ping statement
-- (`monitor::ping`) decides it; this only lets the ring hold the new kind.
-- Added NOT VALID then validated: validating takes no lock that blocks pings.
ALTER TABLE heartbeat.ping DROP CONSTRAINT ping_kind_check;
ALTER TABLE heartbeat.ping ADD CONSTRAINT ping_kind_check
    CHECK (kind IN ('success', 'fail', 'start', 'log', 'ign')) NOT VALID;
ALTER TABLE heartbeat.ping VALIDATE CONSTRAINT ping_kind_check;
