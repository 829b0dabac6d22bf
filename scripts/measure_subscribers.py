#!/usr/bin/env python3
"""Memory (RSS) and CPU of keyward with N idle revocation-stream subscribers
against none, in the same run (issue 14). Prints, asserts nothing.

    python3 scripts/measure_subscribers.py [--binary target/debug/keyward]
        [--subscribers 1000] [--seconds 10]

It creates a database of its own (dropped at the end), starts the binary on
a free port, creates a service with `keyward services create`, measures the
process over `--seconds` with no subscriber, opens the subscribers (each
reads its `event: reset` and then stays idle, reading heartbeats), measures
again over the same time, and prints both with the difference per
subscriber. A release build (`cargo build --release`) gives the figures
that matter; a debug build's CPU is several times higher.
"""

import argparse
import base64
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

PG = os.environ.get("KEYWARD_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432")


def psql(sql):
    subprocess.run(["psql", f"{PG}/postgres", "-qc", sql], check=True,
                   stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid):
    """(rss bytes, cpu seconds) of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    return rss, cpu


def measure(pid, seconds, subscribers):
    """RSS at the end and CPU share over `seconds`, draining the sockets."""
    _, cpu0 = proc_sample(pid)
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        drain(subscribers, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
    rss, cpu1 = proc_sample(pid)
    return rss, (cpu1 - cpu0) / (time.monotonic() - t0)


class Subscribers:
    """The open streams, watched with epoll (select() stops at fd 1024)."""

    def __init__(self):
        self.socks = []
        self.sel = selectors.DefaultSelector()
        # The streams that answered 200 and sent their reset.
        self.reset = set()

    def add(self, sock):
        self.socks.append(sock)
        self.sel.register(sock, selectors.EVENT_READ)

    def close(self):
        for s in self.socks:
            s.close()
        self.sel.close()

    def __len__(self):
        return len(self.socks)


def drain(subscribers, timeout):
    """Reads whatever the subscribers were sent, waiting up to `timeout`."""
    if not subscribers:
        time.sleep(timeout)
        return
    for key, _ in subscribers.sel.select(timeout):
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            continue
        if b"event: reset" in data:
            subscribers.reset.add(key.fileobj.fileno())


def subscribe(port, auth):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((f"GET /revocations/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Accept: text/event-stream\r\nAuthorization: Basic {auth}\r\n\r\n").encode())
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "keyward"))
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.subscribers + 256)), hard))

    db = "keyward_measure_" + uuid.uuid4().hex[:12]
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"{PG}/{db}", KEYWARD__SERVER__PORT=str(port),
               KEYWARD__RATE_LIMIT__ENABLED="false", RUST_LOG="warn")
    server = None
    subscribers = Subscribers()
    try:
        subprocess.run([args.binary, "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([args.binary, "services", "create", "measure"], env=env,
                             check=True, capture_output=True, text=True).stdout
        creds = json.loads(out)
        auth = base64.b64encode(
            f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        server = subprocess.Popen([args.binary, "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        idle_rss, idle_cpu = measure(server.pid, args.seconds, Subscribers())
        for _ in range(args.subscribers):
            subscribers.add(subscribe(port, auth))
        # Let every stream answer and send its reset before measuring.
        settle = time.monotonic() + 3
        while time.monotonic() < settle:
            drain(subscribers, 0.2)
        subs_rss, subs_cpu = measure(server.pid, args.seconds, subscribers)
        n = len(subscribers)
        if len(subscribers.reset) < n:
            print(f"warning: only {len(subscribers.reset)} of {n} streams sent their reset")
        print(f"keyward ({args.binary}), {args.seconds:g} s each, same run:")
        print(f"  no subscriber:     RSS {idle_rss / 2**20:7.1f} MiB, CPU {idle_cpu * 100:5.2f} %")
        print(f"  {n} subscribers: RSS {subs_rss / 2**20:7.1f} MiB, CPU {subs_cpu * 100:5.2f} %")
        print(f"  per subscriber:    {(subs_rss - idle_rss) / n / 1024:.1f} KiB, "
              f"{(subs_cpu - idle_cpu) * 100 / n * 1000:.2f} m% CPU")
    finally:
        subscribers.close()
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
