"""HTTP endpoints, and the server as a light CPU-only node: no torch needed."""

from __future__ import annotations

import gzip
import json

import httpx

from tests.support.raw import server_text


def test_healthz_reports_the_store(start_server):
    server = start_server()
    response = httpx.get(server.http_url + "/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"]["status"] == "ok" and body["store"]["kind"] == "sqlite"
    assert body["engine"]["mode"] == "off" and body["engine"]["status"] == "off" and "--engine" in body["engine"]["detail"]


def test_metrics_count_what_happens(start_server, node_peers):
    server = start_server()
    a = node_peers(server.ws_url, "metered")
    b = node_peers(server.ws_url, "metered")
    a.wait_synced()
    b.wait_synced()
    for word in ["one ", "two ", "three "]:
        a.insert(0, word)
        b.wait_text(a.text)
    text = httpx.get(server.http_url + "/metrics").text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["redraft_connections"]) == 2
    assert float(samples["redraft_rooms"]) == 1
    assert float(samples['redraft_updates_total{source="client"}']) == 3
    assert float(samples["redraft_store_append_seconds_count"]) == 3


def test_the_editor_is_served_compressed(start_server):
    server = start_server()
    page = httpx.get(server.http_url + "/d/any")
    bundle_url = next(part.split('"')[0] for part in page.text.split('src="')[1:] if "/assets/app.js" in part)
    plain = httpx.get(server.http_url + bundle_url, headers={"Accept-Encoding": "identity"})
    with httpx.stream("GET", server.http_url + bundle_url, headers={"Accept-Encoding": "gzip"}) as packed:
        sent = b"".join(packed.iter_raw())  # as it came over the wire
    assert plain.status_code == packed.status_code == 200
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(sent) == plain.content
    assert len(sent) < len(plain.content) / 2


def test_unknown_pages_are_json_errors(start_server):
    server = start_server()
    response = httpx.get(server.http_url + "/d/bad%20name")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_doc_name"


def test_serves_without_torch(tmp_path, start_server, node_peers):
    # A module named torch that refuses to import: the collaboration server must not need it.
    blocker = tmp_path / "no-torch"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    server = start_server(extra_args=("--engine", "off"), env={"PYTHONPATH": str(blocker)})
    peer = node_peers(server.ws_url, "light")
    peer.wait_synced()
    peer.insert(0, "no GPU here")
    assert json.loads(httpx.get(server.http_url + "/healthz").text)["status"] == "ok"
    # Read back through a fresh client: the update went through the whole path.
    import time

    deadline = time.monotonic() + 5
    while server_text(server.ws_url, "light") != "no GPU here":
        assert time.monotonic() < deadline, "the server never held the text"
        time.sleep(0.05)
