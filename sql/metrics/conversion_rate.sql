-- title: Conversion rate
-- kind: ratio
-- grain: hour
-- description: Orders per page view; null in an hour without page views.
SELECT b.bucket,
       c.orders::float8 / nullif(c.views, 0) AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket,
           count(*) FILTER (WHERE name = 'order') AS orders,
           count(*) FILTER (WHERE name = 'page_view') AS views
    FROM heartbeat.event
    WHERE name IN ('order', 'page_view') AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
