#!/usr/bin/env python3
"""Failover time: SIGKILL of the master to the first acknowledged write on
the new master, shardis-monitor against redis-sentinel.

Each run starts fresh: a master and two replicas (on 127.0.0.2-4) and three
managers (on 127.0.0.5-7, quorum 2, the same down-after-milliseconds and
failover-timeout on both sides). Once every manager knows both replicas and
the two other managers, a client writes in a loop to the master the
managers name (it asks them in order, as a Sentinel client does, taking
the first answer that names a new master), the master is SIGKILLed, and the
time to the first SET acknowledged by another server is taken. The two
managers alternate run by run, so drift on the machine hits both alike.

    benches/failover.py                      # 20 runs each, shardis-server on both sides
    benches/failover.py --runs 5 --servers redis
    benches/failover.py --only shardis-monitor

Prints a markdown section (for benches/RESULTS.md); per-run times and logs
go to target/bench/failover-<run-id>/.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
SHARDIS_BIN = os.path.join(TARGET_DIR, "release", "shardis-server")
MONITOR_BIN = os.path.join(TARGET_DIR, "release", "shardis-monitor")
RUN_ID = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
OUT_DIR = os.path.join(ROOT, "target", "bench", f"failover-{RUN_ID}")
SERVER_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
MANAGER_HOSTS = ("127.0.0.5", "127.0.0.6", "127.0.0.7")
FAILOVER_TIMEOUT_MS = 10000
# A run that has not failed over by then counts as failed.
RUN_LIMIT_S = 30


def log(msg):
    print(f"[failover] {msg}", file=sys.stderr, flush=True)


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-", b":"):
        return (t, rest.decode(errors="replace"))
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed")
        return data[:-2].decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise ConnectionError(f"bad reply {line!r}")


def command(host, port, *args, timeout=0.5):
    """One command on a fresh connection; the reply, or an exception."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(encode(args))
        with s.makefile("rb") as f:
            return read_reply(f)


def fields(flat):
    return dict(zip(flat[0::2], flat[1::2])) if isinstance(flat, list) else {}


class Proc:
    """A process started in its own session, stopped by its pid."""

    def __init__(self, name, argv, host, port, workdir):
        self.name, self.argv, self.host, self.port = name, argv, host, port
        self.log = open(os.path.join(workdir, f"{name}.log"), "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if command(host, port, "PING") == (b"+", "PONG"):
                    return
            except (OSError, ConnectionError, ValueError):
                pass
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{name} did not start: {' '.join(argv)} (see {self.log.name})")

    def kill(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.log.close()


def start_servers(kind, workdir):
    procs = []
    master = None
    for i, host in enumerate(SERVER_HOSTS):
        port = free_port(host)
        d = os.path.join(workdir, f"server{i}")
        os.makedirs(d)
        if kind == "shardis":
            argv = [SHARDIS_BIN, "--port", str(port), "--bind", host, "--shards", "1", "--dir", d]
            if master:
                argv += ["--replicaof", master.host, str(master.port)]
        else:
            # No diskless-sync delay (5 s by default): replicas in sync at once.
            argv = ["redis-server", "--port", str(port), "--bind", host, "--save", "",
                    "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", d]
            if master:
                # Announce its own address, not the connection's (127.0.0.1).
                argv += ["--replicaof", master.host, str(master.port), "--replica-announce-ip", host]
        p = Proc(f"{kind}-server{i}", argv, host, port, workdir)
        procs.append(p)
        master = master or p
    return procs


def start_managers(kind, master, down_after, workdir):
    procs = []
    for i, host in enumerate(MANAGER_HOSTS):
        port = free_port(host)
        d = os.path.join(workdir, f"manager{i}")
        os.makedirs(d)
        if kind == "shardis-monitor":
            argv = [MONITOR_BIN, "--bind", host, "--port", str(port), "--dir", d,
                    "--monitor", f"mymaster {master.host} {master.port} 2",
                    "--down-after-milliseconds", str(down_after),
                    "--failover-timeout", str(FAILOVER_TIMEOUT_MS)]
        else:
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind {host}\ndaemonize no\ndir {d}\n"
                        f"sentinel announce-ip {host}\n"
                        f"sentinel monitor mymaster {master.host} {master.port} 2\n"
                        f"sentinel down-after-milliseconds mymaster {down_after}\n"
                        f"sentinel failover-timeout mymaster {FAILOVER_TIMEOUT_MS}\n"
                        f"sentinel parallel-syncs mymaster 1\n")
            argv = ["redis-sentinel", conf]
        procs.append(Proc(f"{kind}{i}", argv, host, port, workdir))
    return procs


def wait_discovery(managers, limit=30):
    deadline = time.monotonic() + limit
    for m in managers:
        while True:
            try:
                f = fields(command(m.host, m.port, "SENTINEL", "master", "mymaster"))
                if f.get("num-slaves") == "2" and f.get("num-other-sentinels") == "2":
                    break
            except (OSError, ConnectionError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{m.name}: no discovery of replicas and managers in {limit}s")
            time.sleep(0.05)


def wait_replicas_in_sync(master, managers, limit=30):
    """The master counts both replicas (WAIT) and every manager has seen
    both links up: the steady state a failover is measured from."""
    deadline = time.monotonic() + limit
    while True:
        try:
            synced = command(master.host, master.port, "WAIT", "2", "100", timeout=1) == (b":", "2")
            links = [fields(r).get("master-link-status")
                     for m in managers
                     for r in command(m.host, m.port, "SENTINEL", "replicas", "mymaster")]
            if synced and links == ["ok"] * 2 * len(managers):
                return
        except (OSError, ConnectionError, ValueError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"replicas not in sync, or not seen so, within {limit}s")
        time.sleep(0.05)


def named_master(managers, old):
    """The first new master a manager names, else the old one."""
    for m in managers:
        try:
            r = command(m.host, m.port, "SENTINEL", "get-master-addr-by-name", "mymaster", timeout=0.2)
            addr = (r[0], int(r[1]))
            if addr != old:
                return addr
        except (OSError, ConnectionError, ValueError, TypeError, IndexError):
            pass
    return old


def try_set(addr, i):
    try:
        return command(addr[0], addr[1], "SET", f"k{i}", str(i), timeout=0.3) == (b"+", "OK")
    except (OSError, ConnectionError, ValueError):
        return False


def one_run(manager, servers_kind, down_after, workdir):
    os.makedirs(workdir)
    procs = []
    try:
        servers = start_servers(servers_kind, workdir)
        procs += servers
        managers = start_managers(manager, servers[0], down_after, workdir)
        procs += managers
        wait_discovery(managers)
        old = (servers[0].host, servers[0].port)
        # Writes before the kill, so replicas are in sync and the link busy.
        for i in range(50):
            # A busy machine may time one out: a few tries each.
            if not any(try_set(old, i) for _ in range(5)):
                raise RuntimeError("the master refused a write before the kill")
            time.sleep(0.01)
        wait_replicas_in_sync(servers[0], managers)
        servers[0].kill()
        t0 = time.monotonic()
        i = 50
        while time.monotonic() - t0 < RUN_LIMIT_S:
            i += 1
            addr = named_master(managers, old)
            if addr != old and try_set(addr, i):
                return time.monotonic() - t0
            time.sleep(0.01)
        return None
    finally:
        for p in procs:
            p.kill()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs per manager (default 20)")
    ap.add_argument("--down-after", type=int, default=1000, help="down-after-milliseconds (default 1000)")
    ap.add_argument("--servers", choices=("shardis", "redis"), default="shardis",
                    help="what the managers fail over (default shardis-server)")
    ap.add_argument("--only", choices=("shardis-monitor", "redis-sentinel"), help="one manager only")
    args = ap.parse_args()
    managers = [args.only] if args.only else ["shardis-monitor", "redis-sentinel"]
    for tool in ["redis-server"] + (["redis-sentinel"] if "redis-sentinel" in managers else []):
        if not shutil.which(tool):
            sys.exit(f"failover: {tool} not found (apt-get install redis-server redis-sentinel)")
    for path in (SHARDIS_BIN, MONITOR_BIN):
        if not os.access(path, os.X_OK):
            sys.exit(f"failover: {path} not found; cargo build --release first")
    os.makedirs(OUT_DIR)
    times = {m: [] for m in managers}
    failed = {m: 0 for m in managers}
    t_start = time.monotonic()
    with open(os.path.join(OUT_DIR, "runs.csv"), "w") as csv:
        csv.write("run,manager,seconds\n")
        for r in range(args.runs):
            # Alternate which manager goes first.
            for m in (managers if r % 2 == 0 else managers[::-1]):
                try:
                    t = one_run(m, args.servers, args.down_after, os.path.join(OUT_DIR, f"run{r}-{m}"))
                except RuntimeError as e:
                    log(f"run {r} {m}: {e}")
                    t = None
                if t is None:
                    failed[m] += 1
                else:
                    times[m].append(t)
                csv.write(f"{r},{m},{'' if t is None else f'{t:.3f}'}\n")
                csv.flush()
                log(f"run {r} {m}: {'failed' if t is None else f'{t * 1000:.0f} ms'}")
    elapsed = time.monotonic() - t_start
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    redis_v = next((w for w in redis_v if w.startswith("v=")), "v=?")[2:]
    server_name = "shardis-server" if args.servers == "shardis" else f"redis-server {redis_v}"
    L = ["## Failover: SIGKILL of the master to the first acknowledged write\n",
         f"`benches/failover.py --runs {args.runs} --servers {args.servers}` ({elapsed:.0f} s), "
         f"shardis commit {commit}, redis {redis_v}, {time.strftime('%Y-%m-%d')}. "
         f"A master and two replicas ({server_name}), three managers, quorum 2, "
         f"down-after-milliseconds {args.down_after}, failover-timeout {FAILOVER_TIMEOUT_MS}; "
         "fresh processes per run, the managers alternating; the master is killed once both replicas are in sync (WAIT 2) and every manager sees their links up. The client asks the managers for the "
         "master every 10 ms and writes there. Raw times in "
         f"`target/bench/failover-{RUN_ID}/runs.csv`.\n",
         "| manager | runs ok | p50 ms | max ms | min ms |",
         "|---|--:|--:|--:|--:|"]
    for m in managers:
        xs = times[m]
        if xs:
            L.append(f"| {m} | {len(xs)}/{len(xs) + failed[m]} | {pct(xs, 0.5) * 1000:.0f} | "
                     f"{max(xs) * 1000:.0f} | {min(xs) * 1000:.0f} |")
        else:
            L.append(f"| {m} | 0/{failed[m]} | – | – | – |")
    if len(managers) == 2 and all(times[m] for m in managers):
        a, b = times["shardis-monitor"], times["redis-sentinel"]
        L.append(f"\nshardis-monitor / redis-sentinel: p50 {pct(a, 0.5) / pct(b, 0.5):.2f}, "
                 f"max {max(a) / max(b):.2f}.")
    if "shardis-monitor" in managers and times["shardis-monitor"]:
        p50 = pct(times["shardis-monitor"], 0.5)
        verdict = "PASS" if p50 <= 1.3 else "FAIL"
        L.append(f"\n- **{verdict}** — issue 16: shardis-monitor p50 <= 1.3 s: {p50 * 1000:.0f} ms")
    print("\n".join(L))
    return 0 if not any(failed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
