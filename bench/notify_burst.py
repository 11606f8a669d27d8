"""Alert burst driver for bench/notify_burst.sh (docs/benchmarks.md, "Alert burst").

    notify_burst.py URL PID RUNS HEARTBEATS

Three local HTTP receivers stand in for three channels (webhook kind, so the
body is the alert JSON: `event`, `heartbeat`, `at` = the instant the heartbeat
went down). Per run: HEARTBEATS heartbeats are inserted (psql, through the
PSQL_CMD environment variable) with deadlines spread over one second starting
a few seconds ahead, each routed to one of the three channels; the daemon's
deadline loop flips them and its delivery worker sends the alerts. Each
receiver notes when a `down` alert arrives; latency = arrival − `at`; the
share after detection is arrival − the flip's `detected_at` (when the deadline
loop wrote it, alert included). The daemon's RSS (VmRSS of PID) is sampled every 100 ms. After
each run the run's heartbeats are deleted (their alerts with them) and the tables they touched are
vacuumed and analyzed, so every run starts from the same state: no dead rows
left by the one before, and statistics taken with nothing pending, as
autovacuum leaves them after a real burst (docs/decisions.md §30).
"""

import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

URL, PID, RUNS, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
PSQL = shlex.split(os.environ["PSQL_CMD"])
LEAD_S = 4.0  # the first deadline, seconds after the insert commits

arrivals = []  # (arrival unix time, body bytes) of the current run


class Receiver(asyncio.Protocol):
    """A minimal HTTP/1.1 server: keep-alive, Content-Length bodies, 200 {}."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            arrivals.append((time.time(), body))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )


def api(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def psql(sql):
    return subprocess.run(PSQL + ["-c", sql], check=True, capture_output=True, text=True).stdout


def rss_mb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def run_once(loop, channels, project, k):
    arrivals.clear()
    ids = ",".join(f"'{c}'::uuid" for c in channels)
    # Deadlines over one second from LEAD_S on; last success one period before.
    psql(
        f"""INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
                 grace_seconds, status, last_ping_at, last_ping_kind, last_signal_at, deadline, channels)
            SELECT gen_random_uuid(), '{project}', 'burst-{k}-' || i,
                   'hb_' || substr(md5('{k}-' || i), 1, 16), 60, 0, 'up', t, 'success', t,
                   t + interval '60 seconds', ARRAY[(ARRAY[{ids}])[1 + i % 3]]
            FROM generate_series(1, {N}) AS i,
                 LATERAL (SELECT now() - interval '60 seconds' + interval '{LEAD_S} seconds'
                                 + (i * 1.0 / {N}) * interval '1 second' AS t) AS s"""
    )
    started = time.time()
    peak = rss_mb()
    while True:
        await asyncio.sleep(0.1)
        peak = max(peak, rss_mb())
        if len(arrivals) >= N or time.time() - started > LEAD_S + 120:
            break
    # A little longer, for the RSS after the burst.
    for _ in range(10):
        await asyncio.sleep(0.1)
        peak = max(peak, rss_mb())
    # When each flip was written (heartbeat.flip.detected_at): what comes after
    # it is the outbox's share.
    detected = {}
    for line in psql(
        f"""SELECT h.name, extract(epoch FROM f.detected_at)
            FROM heartbeat.flip f JOIN heartbeat.heartbeat h USING (heartbeat_id)
            WHERE h.name LIKE 'burst-{k}-%' AND f.to_status = 'down'"""
    ).splitlines():
        name, _, epoch = line.partition("|")
        detected[name] = float(epoch)
    lat, after = [], []
    for at, body in arrivals:
        a = json.loads(body)
        if a.get("event") != "down":
            continue
        flipped = datetime.fromisoformat(a["at"].replace("Z", "+00:00")).timestamp()
        lat.append(at - flipped)
        name = a["heartbeat"]["name"]
        if name in detected:
            after.append(at - detected[name])
    # How much of it is detection: the flip committed (detected_at) after `at`.
    detect = psql(
        f"""SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.detected_at - f.at))::numeric, 3),
                   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM f.detected_at - f.at))::numeric, 3)
            FROM heartbeat.flip f JOIN heartbeat.heartbeat h USING (heartbeat_id)
            WHERE h.name LIKE 'burst-{k}-%'"""
    ).strip().replace("|", " / ")
    psql(f"DELETE FROM heartbeat.heartbeat WHERE name LIKE 'burst-{k}-%'")
    psql("VACUUM ANALYZE heartbeat.heartbeat, heartbeat.flip, heartbeat.alert, "
         "heartbeat.delivery_attempt, heartbeat.ping")
    return lat, after, peak, detect


async def main():
    loop = asyncio.get_running_loop()
    channels = []
    for i in range(3):
        server = await loop.create_server(Receiver, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = api("POST", "/api/channels", {"name": f"receiver {i}", "kind": "webhook",
                                           "config": {"url": f"http://127.0.0.1:{port}/hook"}})
        channels.append(c["id"])
    project = psql(f"SELECT project_id FROM heartbeat.channel WHERE channel_id = '{channels[0]}'").strip()
    print(f"# {N} heartbeats down within 1 s per run, routed round-robin to 3 webhook channels")
    print("# run  received  p50_s  p99_s  max_s  peak_rss_mb  detection_p50/p99_s  after_detection_p99_s")
    p99s, peaks = [], []
    for k in range(1, RUNS + 1):
        lat, after, peak, detect = await run_once(loop, channels, project, k)
        if not lat:
            print(f"{k:5d}  0 alerts received")
            continue
        p50, p99, mx = pct(lat, 50), pct(lat, 99), max(lat)
        p99s.append(p99)
        peaks.append(peak)
        print(f"{k:5d}  {len(lat):8d}  {p50:5.3f}  {p99:5.3f}  {mx:5.3f}  {peak:11.1f}  {detect:>19}  {pct(after, 99) if after else float('nan'):5.3f}")
        await asyncio.sleep(2)
    if p99s:
        met = sum(1 for p in p99s if p <= 2.0)
        print(
            f"p99 over {len(p99s)} runs: min {min(p99s):.3f} s, median {statistics.median(p99s):.3f} s, "
            f"max {max(p99s):.3f} s (pass: <= 2 s; met in {met} of {len(p99s)} runs)"
        )
        print(
            f"peak RSS over {len(peaks)} runs: min {min(peaks):.1f} MB, median {statistics.median(peaks):.1f} MB, "
            f"max {max(peaks):.1f} MB (pass: < 100 MB)"
        )


asyncio.run(main())
