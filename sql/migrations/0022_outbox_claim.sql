-- The outbox's claim reads one channel's due alerts in order and stops at the
-- batch (docs/decisions.md §30), so its cost follows the batch, not the backlog,
-- whatever the table's statistics say after a burst.

-- Due alerts of one channel, in the order they are sent: the claim's index scan
-- with `LIMIT`. Replaces `alert_due_idx` (due time alone, every channel mixed).
DROP INDEX heartbeat.alert_due_idx;
CREATE INDEX alert_claim_idx ON heartbeat.alert (channel_id, next_attempt_at, alert_id)
    WHERE state = 'pending';

-- The first pending alert of one heartbeat on one channel (alerts of a pair go
-- out in order): one probe per claimed row. The heartbeat leads, as the most
-- selective key, so no other index answers the probe as well, even with
-- statistics that say nothing is pending. Replaces `alert_pair_idx`.
DROP INDEX heartbeat.alert_pair_idx;
CREATE INDEX alert_pending_pair_idx ON heartbeat.alert (heartbeat_id, channel_id, alert_id)
    WHERE state = 'pending';

-- Every alert is written once and updated once or twice (leased, then
-- recorded), and a table holding days of delivered history reaches the default
-- 20 % of dead rows rarely: vacuum after a fixed number of changed rows
-- instead, so a burst's dead index entries are cleaned within a minute of it.
ALTER TABLE heartbeat.alert SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
