-- The ping history as a ring of `monitor.pings_kept` slots per heartbeat
-- (docs/decisions.md §21). A ping overwrites the slot `seq % pings_kept` in place
-- (INSERT ... ON CONFLICT DO UPDATE) instead of inserting a row and deleting the
-- oldest: one heap-only update on a page that already holds the slot, no new
-- index entry, no dead index entry left for VACUUM.
--
-- The ring size is recorded in heartbeat.ping_ring. A daemon whose pings_kept
-- differs from the recorded size refits the ring at startup (monitor::ring::fit):
-- it drops the pings that fall outside the new window and moves the rest to their
-- new slots. Existing pings get a negative slot here (-(seq + 1), unique per
-- heartbeat and clear of every real slot) and no recorded size, so the first start
-- of this version fits them.
ALTER TABLE heartbeat.ping ADD COLUMN slot bigint;
UPDATE heartbeat.ping SET slot = -(seq + 1);
ALTER TABLE heartbeat.ping ALTER COLUMN slot SET NOT NULL;
ALTER TABLE heartbeat.ping DROP CONSTRAINT ping_pkey;
ALTER TABLE heartbeat.ping ADD PRIMARY KEY (heartbeat_id, slot);

-- A finish with a rid looks for its start among its heartbeat's pings, at most
-- pings_kept rows reached through the primary key. A second index on the ping
-- table would make every overwrite that changes the rid a non-HOT update.
DROP INDEX IF EXISTS heartbeat.ping_rid_idx;

-- Room on each page for the new version of an overwritten slot (HOT updates need
-- it on the same page).
ALTER TABLE heartbeat.ping SET (fillfactor = 80);

CREATE TABLE heartbeat.ping_ring (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    size  integer NOT NULL CHECK (size > 0)
);

-- started_at as it was before the last ping statement, written by that statement
-- (a SET sees the old row, RETURNING only the new one): it times the runs the
-- statement's pings finish without reading each heartbeat a second time.
ALTER TABLE heartbeat.heartbeat ADD COLUMN prev_started_at timestamptz;
