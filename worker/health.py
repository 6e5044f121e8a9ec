"""`redraft worker-health`: whether this host's engine worker is ready, as a container health check.

A worker writes its liveness key (JSON, a few seconds' TTL) and keeps its name in the workers set
(worker/run.py, keys from WorkerConfig); the key says `ready` only once the model is loaded and a
warm-up redraft ran. Without `--name` the check looks for the workers named as a worker names itself by
default, `{hostname}-{pid}`: a container has a hostname of its own, so these are the workers of this
container. Needs redis only, no torch.
"""

from __future__ import annotations

import json
import socket

from jobs.protocol import liveness_key, workers_key


def worker_status(redis_url: str, prefix: str, name: str | None = None) -> tuple[bool, str]:
    """(ready, a line that says why) for the named worker, or for this host's workers."""
    import redis
    from redis.exceptions import RedisError

    try:
        with redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5) as client:
            if name:
                names = [name]
            else:
                host = socket.gethostname() + "-"
                names = sorted(n for n in (m.decode() for m in client.smembers(workers_key(prefix)))
                               if n.startswith(host))
            values = client.mget([liveness_key(prefix, n) for n in names]) if names else []
    except RedisError as exc:
        return False, f"cannot reach Redis: {exc}"
    statuses = [json.loads(value) for value in values if value is not None]
    ready = [status["name"] for status in statuses if status.get("ready")]
    if ready:
        return True, f"ready: {', '.join(ready)}"
    if statuses:
        return False, f"not ready yet (loading the model or stopping): {', '.join(s['name'] for s in statuses)}"
    return False, f"no live worker named {name}" if name else f"no live worker on {socket.gethostname()}"
