-- title: Clients gone quiet
-- description: Clients active in the window before this one but silent in it:
-- description: candidates for a churn check.
-- windows: 7d, 30d
SELECT client_id,
       count(*)          AS events_before,
       max(occurred_at)  AS last_seen
FROM heartbeat.event
WHERE occurred_at >= $1 - ($2 - $1) AND occurred_at < $1
  AND client_id IS NOT NULL
  AND client_id NOT IN (
      SELECT client_id FROM heartbeat.event
      WHERE occurred_at >= $1 AND occurred_at < $2 AND client_id IS NOT NULL
  )
GROUP BY client_id
ORDER BY last_seen DESC, client_id
LIMIT 100
