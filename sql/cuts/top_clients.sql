-- title: Top clients by revenue
-- description: The twenty clients with the most order revenue in the window, with
-- description: their order count, page views and when each was last seen.
-- windows: 24h, 7d, 30d
SELECT client_id,
       coalesce(sum(value) FILTER (WHERE name = 'order'), 0)  AS revenue,
       count(*) FILTER (WHERE name = 'order')                 AS orders,
       count(*) FILTER (WHERE name = 'page_view')             AS page_views,
       max(occurred_at)                                       AS last_seen
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
GROUP BY client_id
ORDER BY revenue DESC, orders DESC, client_id
LIMIT 20
