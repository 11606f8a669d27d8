-- title: Active clients
-- kind: rolling_stat
-- grain: hour
-- description: Distinct clients with any event in the hour, against its 28-day mean.
SELECT b.bucket, coalesce(c.value, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(DISTINCT client_id) AS value
    FROM heartbeat.event
    WHERE occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
