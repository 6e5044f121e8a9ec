"""The README's backup and restore of the Redis data, on a real redis-server and a real `redraft serve`:
BGSAVE and copy dump.rdb out; later, with everything stopped, docker/redis-restore.sh puts it back, and
the restarted Redis (AOF on, as compose runs it) serves the documents as they were at the backup."""

from __future__ import annotations

import shutil
import subprocess

import redis

from tests.deploy.compose import ROOT
from tests.support.processes import RedisServer, wait_until

RESTORE = ROOT / "docker" / "redis-restore.sh"
BEFORE = "written before the backup: 中文 😀"


def _bgsave(url: str) -> None:
    """As the README says: BGSAVE, then wait until INFO says it is over and went well."""
    with redis.Redis.from_url(url) as client:
        client.bgsave()  # answers once the saving child runs, so "in progress" cannot read 0 too early
        wait_until(lambda: not client.info("persistence")["rdb_bgsave_in_progress"], 10, "BGSAVE to finish")
        assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"


def test_a_backup_restored_into_an_aof_redis_brings_the_documents_back(tmp_path, start_server, node_peers):
    store = RedisServer(tmp_path / "redis", persistent=True)
    try:
        server = start_server("one", redis_url=store.url)
        alice = node_peers(server.ws_url, "notes")
        bob = node_peers(server.ws_url, "notes")
        alice.insert(0, BEFORE)
        bob.wait_text(BEFORE)  # broadcast, so appended to the store
        _bgsave(store.url)
        backup = shutil.copy(store.workdir / "dump.rdb", tmp_path / "backup.rdb")
        alice.insert(len(BEFORE.encode("utf-16-le")) // 2, " and after it")
        bob.wait_text(BEFORE + " and after it")
        alice.close()
        bob.close()
        server.stop()
    finally:
        store.stop()

    restored = subprocess.run(["sh", str(RESTORE), str(backup), str(store.workdir)], check=False, capture_output=True,
                              text=True, timeout=60)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    (store.workdir / "dump.rdb").unlink()  # what Redis serves from now on is in the AOF
    store = RedisServer.restart(store)
    try:
        server.start()
        fresh = node_peers(server.ws_url, "notes")
        fresh.wait_synced()
        assert fresh.text == BEFORE
        server.stop()
    finally:
        store.stop()
