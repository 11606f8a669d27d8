-- The ping path, made cheaper per ping (docs/benchmarks.md, "Dead man's switch").
--
-- 1. heartbeat_project_idx duplicated the UNIQUE (project_id, name) index; every
--    non-HOT update of a heartbeat paid for both.
DROP INDEX IF EXISTS heartbeat.heartbeat_project_idx;

-- 2. A success ping no longer rewrites the indexed deadline (the deadline loop
--    pushes a passed one forward), so its update can be HOT when the page has room.
ALTER TABLE heartbeat.heartbeat SET (fillfactor = 70);

-- 3. The foreign key from ping to heartbeat ran a trigger (a key-share row lock on
--    the heartbeat) for every inserted ping, though the ping statement only inserts
--    pings for heartbeats it has just updated (and so locked). ON DELETE CASCADE is
--    kept by a statement-level trigger that deletes the pings of deleted heartbeats.
ALTER TABLE heartbeat.ping DROP CONSTRAINT IF EXISTS ping_heartbeat_id_fkey;

CREATE FUNCTION heartbeat.delete_pings_of_deleted_heartbeats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM heartbeat.ping p USING gone g WHERE p.heartbeat_id = g.heartbeat_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER heartbeat_delete_pings
    AFTER DELETE ON heartbeat.heartbeat
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION heartbeat.delete_pings_of_deleted_heartbeats();
