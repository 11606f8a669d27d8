-- title: Event mix
-- description: Events per name in the window: how many, from how many clients,
-- description: and the spread of their values.
-- windows: 24h, 7d
SELECT name,
       count(*)                       AS events,
       count(DISTINCT client_id)      AS clients,
       min(value)                     AS min_value,
       round(avg(value)::numeric, 2)  AS avg_value,
       max(value)                     AS max_value
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
GROUP BY name
ORDER BY events DESC, name
