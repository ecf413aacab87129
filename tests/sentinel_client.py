"""redis-py's Sentinel client writing through a failover (driven by
tests/monitor_shardis.rs, not run by itself).

usage: sentinel_client.py host:port[,host:port...] master-name writes-after seconds

INCRs `py:count` on the master that redis-py's Sentinel client finds, one
write every 10 ms. Exits 0 once `writes-after` writes were acknowledged by
a master other than the first one it used (the client followed the
failover), 1 when `seconds` pass first. Prints one summary line.
"""

import sys
import time

from redis.exceptions import RedisError
from redis.sentinel import Sentinel


def main():
    sentinels = []
    for a in sys.argv[1].split(","):
        host, port = a.rsplit(":", 1)
        sentinels.append((host, int(port)))
    name, need, limit = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    # Short timeouts: a killed master must not hold a write for long.
    sentinel = Sentinel(sentinels, socket_timeout=0.5, socket_connect_timeout=0.5)
    master = sentinel.master_for(name, socket_timeout=0.5, socket_connect_timeout=0.5)
    first, last = None, None
    before = after = errors = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and after < need:
        try:
            master.incr("py:count")
            # The old master is dead once it fails, so the master named
            # now is the one that acknowledged the write.
            last = sentinel.discover_master(name)
        except RedisError:
            errors += 1
            time.sleep(0.05)
            continue
        if first is None:
            first = last
        if last == first:
            before += 1
        else:
            after += 1
        time.sleep(0.01)
    print(f"first={first} last={last} before={before} after={after} errors={errors}", flush=True)
    sys.exit(0 if after >= need else 1)


if __name__ == "__main__":
    main()
