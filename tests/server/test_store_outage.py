"""Redis going away: health says so, edits wait in memory, and land when it is back."""

from __future__ import annotations

import httpx

from tests.support.processes import RedisServer, wait_until
from tests.support.raw import server_text


def test_edits_survive_a_redis_restart(tmp_path, start_server, node_peers):
    redis_server = RedisServer(tmp_path / "redis", persistent=True)
    try:
        server = start_server(redis_url=redis_server.url)
        a = node_peers(server.ws_url, "outage")
        b = node_peers(server.ws_url, "outage")
        a.wait_synced()
        b.wait_synced()
        a.insert(0, "before ")
        b.wait_text("before ")

        redis_server.stop()
        wait_until(lambda: httpx.get(server.http_url + "/healthz").status_code == 503, 10, "health to degrade")
        body = httpx.get(server.http_url + "/healthz").json()
        assert body["store"]["status"] == "error" and body["store"]["kind"] == "redis"
        # Not durable yet, so not broadcast yet: b must not see it.
        a.insert(7, "during")

        redis_server = RedisServer.restart(redis_server)
        b.wait_text("before during", timeout=15)
        wait_until(lambda: httpx.get(server.http_url + "/healthz").status_code == 200, 10, "health to recover")
        assert server_text(server.ws_url, "outage") == "before during"
        # And it is in Redis itself: a restarted server, with no client to resupply it, has it.
        for peer in (a, b):
            peer.close()
        server.restart()
        assert server_text(server.ws_url, "outage") == "before during"
    finally:
        redis_server.stop()
