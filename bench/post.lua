-- wrk script: the recompute request a dashboard or cron wrapper sends.
wrk.method = "POST"
wrk.body = '{"metric_ids": "all", "trigger": "user"}'
wrk.headers["Content-Type"] = "application/json"
