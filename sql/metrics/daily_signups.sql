-- title: Sign-ups per day
-- kind: counter
-- grain: day
-- description: New accounts per UTC day.
SELECT b.bucket, coalesce(c.value, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 day', interval '1 day') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('day', occurred_at) AS bucket, count(*) AS value
    FROM heartbeat.event
    WHERE name = 'signup' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
