#!/usr/bin/env python3
"""Mixed traffic for bench/soak.sh: over the heartbeats listed in HEARTBEATS
(lines "id token"), plus 20 flapping ones and a webhook to a local receiver it
creates, drives pings at a fixed rate, API reads, a recompute a minute and
fail/success pings on the flappers, for SECONDS. Prints "traffic" when it starts.

    soak_load.py URL HOOK_PORT SECONDS PING_RATE HEARTBEATS

Standard library only: threads with keep-alive connections."""
import http.client
import http.server
import json
import random
import sys
import threading
import time
import urllib.parse

URL, HOOK_PORT, SECONDS, RATE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
HEARTBEATS = sys.argv[5]
HOST = urllib.parse.urlparse(URL)
alerts = 0
counts = {"ping": 0, "read": 0, "recompute": 0, "flap": 0, "errors": 0}
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global alerts
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            alerts += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def conn():
    return http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)


def call(c, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data else {}
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.read()
    return r.status, out


def create(c, name, period):
    s, out = call(c, "POST", "/api/heartbeats", {"name": name, "period_seconds": period, "grace_seconds": 60})
    assert s == 201, (s, out)
    hb = json.loads(out)
    return hb["id"], urllib.parse.urlparse(hb["ping_url"]).path


def paced(kind, rate, step):
    c = conn()
    interval = 1.0 / rate
    next_at = time.monotonic()
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        try:
            ok = step(c)
        except Exception:
            c = conn()
            ok = False
        with lock:
            counts[kind if ok else "errors"] += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def main():
    threading.Thread(target=http.server.ThreadingHTTPServer(("127.0.0.1", HOOK_PORT), Hook).serve_forever, daemon=True).start()
    c = conn()
    s, out = call(c, "POST", "/api/webhooks", {"url": f"http://127.0.0.1:{HOOK_PORT}/hook"})
    assert s == 201, (s, out)
    paths, ids = [], []
    with open(HEARTBEATS) as f:
        for line in f:
            hid, token = line.split()
            ids.append(hid)
            paths.append(f"/hb/{token}")
    flappers = [create(c, f"flap-{i}", 3600)[1] for i in range(20)]
    print(f"traffic: {len(paths)} heartbeats, 20 flappers, {RATE} pings/s", flush=True)

    def ping(c):
        return call(c, "GET", random.choice(paths))[0] == 200

    reads = ["/api/heartbeats", "/api/schedule", "/api/jobs?limit=20"]

    def read(c):
        path = random.choice(reads + [f"/api/heartbeats/{random.choice(ids)}"])
        return call(c, "GET", path)[0] == 200

    def recompute(c):
        return call(c, "POST", "/api/metrics/recompute", {"metric_ids": "all"})[0] == 202

    state = {"fail": True}

    def flap(c):
        suffix = "/fail" if state["fail"] else ""
        state["fail"] = not state["fail"]
        return all(call(c, "GET", p + suffix)[0] == 200 for p in flappers)

    # Pings over several threads: one keep-alive connection keeps ~200/s each.
    per = max(1, RATE // 100)
    threads = [threading.Thread(target=paced, args=("ping", RATE / per, ping)) for _ in range(per)]
    threads += [
        threading.Thread(target=paced, args=("read", 20, read)),
        threading.Thread(target=paced, args=("recompute", 1 / 60, recompute)),
        threading.Thread(target=paced, args=("flap", 1 / 5, flap)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(3)
    print(f"done: {counts}, alerts received: {alerts}", flush=True)


main()
