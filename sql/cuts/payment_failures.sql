-- title: Payment failures by client
-- description: Clients with failed payments in the window, worst first: failures,
-- description: orders, and failures per attempted payment.
-- windows: 24h, 7d
SELECT client_id,
       count(*) FILTER (WHERE name = 'payment_failed')  AS failed_payments,
       count(*) FILTER (WHERE name = 'order')           AS orders,
       round((count(*) FILTER (WHERE name = 'payment_failed'))::numeric
             / count(*) FILTER (WHERE name IN ('order', 'payment_failed')), 3) AS failure_rate
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
  AND name IN ('order', 'payment_failed')
GROUP BY client_id
HAVING count(*) FILTER (WHERE name = 'payment_failed') > 0
ORDER BY failed_payments DESC, failure_rate DESC, client_id
