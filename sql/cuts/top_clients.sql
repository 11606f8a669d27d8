-- title: Most active clients
-- description: The twenty clients with the most events in the window, with the
-- description: sum of their event values and when each was last seen.
-- windows: 24h, 7d, 30d
SELECT client_id,
       count(*)                 AS events,
       coalesce(sum(value), 0)  AS value_sum,
       max(occurred_at)         AS last_seen
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
  AND client_id IS NOT NULL
GROUP BY client_id
ORDER BY events DESC, client_id
LIMIT 20
