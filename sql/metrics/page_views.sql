-- title: Page views
-- kind: counter
-- grain: hour
-- description: page_view events per hour, all clients.
SELECT b.bucket, coalesce(c.value, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS value
    FROM heartbeat.event
    WHERE name = 'page_view' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
