"""Version history as people see it: versions grouped from entries, pages, diffs, restore, and who wrote what
(server/history/versions.py, reading.py, api.py, restore.py; identity in server/auth.py)."""

from __future__ import annotations

import asyncio
import random

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from server.auth import AuthError, Grant, mint_token, verify_token
from server.config import ServerConfig
from server.history import reading
from server.history.entry import Author, HistoryEntry, Origin
from server.history.versions import diff_ops, group
from server.redrafts.request import RedraftError, parse_person
from server.services import Services
from server.stores.redis import RedisStore
from server.stores.sqlite import SqliteStore
from tests.server.test_redraft_history import TEXT, ScriptedBackend
from tests.support.processes import wait_until

SECRET = "a-secret-of-sixteen-chars"
ADA = Author("Ada", "#d1495b", verified=True)
ADA_UNVERIFIED = Author("Ada", "#d1495b")
BOB = Author("Bob", "#00798c")
AI = Author("Redraft AI", None, verified=True, kind="ai")


@pytest.fixture
def anyio_backend():
    return "asyncio"


def entry(seq: int, at: float, author: Author = ADA, connection: str | None = "i:1", origin: Origin = Origin()):
    return HistoryEntry(seq, at, b"", author, origin, connection)


# --- grouping ------------------------------------------------------------------------------------------------


def test_typing_of_one_connection_and_author_within_the_pause_is_one_version():
    entries = [
        entry(1, 0.0), entry(2, 30.0), entry(3, 90.0),  # 60 s apart at most: one version
        entry(4, 151.0),  # 61 s later: a new one
        entry(5, 152.0, connection="i:2"),  # another connection (the same person in another tab)
        entry(6, 153.0, connection="i:2", author=ADA_UNVERIFIED),  # the same name, unverified: someone else
        entry(7, 154.0, connection="i:2", author=Author("Ada", "#000000", verified=True)),  # new colour only...
        entry(8, 155.0, connection="i:2", author=Author("Ada", "#000000", verified=True)),
        entry(9, 156.0, author=AI, connection=None, origin=Origin("redraft", "r1", "Shorter", "m", ADA)),
        entry(10, 157.0, author=AI, connection=None, origin=Origin("redraft", "r2", "Longer", "m", ADA)),
        entry(11, 158.0, author=ADA, connection=None, origin=Origin("undo", "r2", requester=ADA)),
        entry(12, 159.0, author=ADA, connection=None, origin=Origin("undo", "r1", requester=ADA)),
    ]
    versions = group(entries, pause_s=60.0)
    assert [(v.first_seq, v.id, v.entries) for v in versions] == [
        (1, 3, 3), (4, 4, 1), (5, 5, 1), (6, 6, 1), (7, 8, 2), (9, 9, 1), (10, 10, 1), (11, 11, 1), (12, 12, 1)
    ]
    redraft = versions[5].to_json()
    assert redraft == {
        "id": 9, "first_seq": 9, "started_at": 156.0, "ended_at": 156.0, "kind": "redraft",
        "author": {"name": "Redraft AI", "color": None, "verified": True, "kind": "ai"},
        "authors": [{"name": "Redraft AI", "color": None, "verified": True, "kind": "ai"}],
        "redraft": {"id": "r1", "instruction": "Shorter", "model": "m",
                    "requester": {"name": "Ada", "color": "#d1495b", "verified": True, "kind": "person"}},
        "restored": None, "entries": 1,
    }
    assert versions[0].to_json()["redraft"] is None and versions[0].to_json()["kind"] == "typing"


def test_a_merged_entry_lists_everyone_it_folds():
    merged = HistoryEntry(9, 5.0, b"", ADA, Origin("merged"), None, (ADA, BOB))
    (version,) = group([merged], pause_s=60.0)
    assert version.to_json()["authors"] == [ADA.to_json(), BOB.to_json()] and version.kind == "merged"


# --- pages and lookups over a real store ------------------------------------------------------------------


def random_entries(rng: random.Random, count: int) -> list[HistoryEntry]:
    """Drafts of a plausible history: bursts of typing from three connections, redrafts, undos, restores."""
    drafts, at = [], 1000.0
    people = [(ADA, "i:1"), (BOB, "i:2"), (ADA_UNVERIFIED, "j:7")]
    for _ in range(count):
        at += rng.choice((0.5, 1.0, 5.0, 59.0, 61.0, 300.0))
        roll = rng.random()
        if roll < 0.8:
            author, connection = people[rng.randrange(3)] if rng.random() < 0.3 else people[0]
            drafts.append(HistoryEntry(0, at, b"\x00\x00", author, Origin(), connection))
        else:
            kind = rng.choice(("redraft", "undo", "redo", "restore"))
            drafts.append(HistoryEntry(0, at, b"\x00\x00", AI, Origin(kind, "r", "i", "m", ADA), None))
    return drafts


@pytest.fixture(params=["sqlite", "redis"])
def stored(request, tmp_path):
    """Makes a store of each kind holding the given drafts as the history of "notes"."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None

    async def make(drafts: list[HistoryEntry]):
        if url is None:
            store = SqliteStore(tmp_path / "history.db")
        else:
            store = RedisStore(aioredis.from_url(url), "test", "instance")
        await store.start()
        for draft in drafts:
            await store.append("notes", [draft.update], history=[draft])
        return store

    return make


@pytest.mark.anyio
async def test_pages_of_any_size_list_every_version_once_newest_first(stored, monkeypatch):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    monkeypatch.setattr(reading, "CHUNK", 7)  # small chunks: versions span many store reads
    store = await stored(random_entries(rng, 300))
    try:
        entries = await store.history("notes")
        expected = [v.to_json() for v in reversed(group(entries, 60.0))]
        for limit in (1, 2, 5, 50, 400):
            listed, before = [], None
            with anyio.fail_after(30):
                while True:
                    versions, before = await reading.page(store, "notes", limit, before, 60.0)
                    assert len(versions) <= limit, seed
                    listed += [v.to_json() for v in versions]
                    if before is None:
                        break
            assert listed == expected, (seed, limit)
        # `before` may also be a listed version's id: that version and the newer ones are left out.
        middle = expected[len(expected) // 2]
        versions, _ = await reading.page(store, "notes", 400, middle["id"], 60.0)
        assert [v.to_json() for v in versions] == expected[len(expected) // 2 + 1 :], seed
        # Every entry's seq finds the version as it was up to then.
        for seq in rng.sample([e.seq for e in entries], 40):
            version = await reading.find(store, "notes", seq, 60.0)
            assert version.to_json() == group([e for e in entries if e.seq <= seq], 60.0)[-1].to_json(), (seed, seq)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_an_unknown_version_is_404_and_a_folded_one_410(stored):
    store = await stored([HistoryEntry(0, float(at), b"\x00\x00", ADA, Origin(), f"i:{at}") for at in range(6)])
    try:
        entries = await store.history("notes")
        seqs = [e.seq for e in entries]
        merged = HistoryEntry(seqs[3], entries[3].at, b"\x00\x00", ADA, Origin("merged"), None, (ADA,))
        assert await store.fold_history("notes", entries[1:4], merged, [])
        for missing, status in ((seqs[1], 410), (seqs[2], 410), (seqs[-1] + 1, 404), (10**9, 404)):
            with pytest.raises(RedraftError) as refused:
                await reading.find(store, "notes", missing, 60.0)
            assert refused.value.status == status, missing
        assert (await reading.find(store, "notes", seqs[3], 60.0)).kind == "merged"
    finally:
        await store.close()


# --- diff -----------------------------------------------------------------------------------------------------


def test_the_diff_spells_both_texts_and_keeps_unchanged_words():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    words = ["the", "quick", "brown", "fox", "😀", "é", "\n", "jumps", "."]
    for _ in range(300):
        old = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        new = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        ops = diff_ops(old, new)
        assert "".join(t for op, t in ops if op != "+") == old, seed
        assert "".join(t for op, t in ops if op != "-") == new, seed
        assert all(t for _, t in ops), seed  # no empty runs
    assert diff_ops("The quick brown fox.", "The slow brown fox!") == [
        ["=", "The "], ["-", "quick"], ["+", "slow"], ["=", " brown fox"], ["-", "."], ["+", "!"]
    ]


# --- identity ---------------------------------------------------------------------------------------------------


def test_a_token_carries_a_signed_name_and_a_forged_one_is_refused():
    token = mint_token(SECRET, "notes", "edit", None, name="Ada Lovelace")
    assert verify_token(SECRET, token, "notes") == Grant("edit", None, "Ada Lovelace")
    assert verify_token(SECRET, mint_token(SECRET, "notes", "read", None), "notes").name is None
    body, _, signature = token.partition(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "name": "Grace"}).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="signature"):
        verify_token(SECRET, f"{forged}.{signature}", "notes")
    for bad in ("", " ", "x" * 65, "Ada\nGrace", "Ada\u202eecarG", 7):
        with pytest.raises(ValueError, match="name"):
            mint_token(SECRET, "notes", "edit", None, name=bad)


# --- a real server: versions of several writers, restore while another types, who may do what ----------------


def http(server, path: str, token: str, method: str = "GET", params: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.request(
        method, f"{server.http_url}/api/docs/notes/{path}", params={"token": token, **(params or {})}, **kwargs
    )


def listed_when(server, token: str, predicate, what: str) -> list[dict]:
    """The versions (newest first) once `predicate` holds for them: appends reach history with the broadcast."""
    found: list[dict] = []

    def check() -> bool:
        found[:] = http(server, "versions", token).json()["versions"]
        return predicate(found)

    wait_until(check, 10, what)
    return found


def test_writers_read_diff_restore_while_another_types_and_undo(start_server, py_clients):
    server = start_server(extra_args=("--secret", SECRET))
    ada = mint_token(SECRET, "notes", "edit", None, name="Ada")
    plain = mint_token(SECRET, "notes", "edit", None)
    reader = mint_token(SECRET, "notes", "read", None)
    # Ada's editor calls her "Not Ada": the token's signed name wins. Mallory claims Ada's name: unverified.
    ada_client = py_clients(server.ws_url, "notes", params={"token": ada}, name="Not Ada")
    mallory = py_clients(server.ws_url, "notes", params={"token": plain}, name="Ada")
    for client in (ada_client, mallory):
        client.wait_synced()
    ada_client.insert(0, "The quick brown fox.")
    versions = listed_when(server, reader, lambda v: len(v) == 1, "Ada's version")
    mallory.wait_text("The quick brown fox.")
    mallory.insert(len("The quick brown fox."), " Jumps over.")
    versions = listed_when(server, reader, lambda v: len(v) == 2, "Mallory's version")
    assert [(v["kind"], v["author"]["name"], v["author"]["verified"]) for v in versions] == [
        ("typing", "Ada", False), ("typing", "Ada", True)
    ]
    first = versions[1]["id"]
    # The session tells the editor its verified name; a link minted from her token carries none.
    session = httpx.get(f"{server.http_url}/api/docs/notes/session", params={"token": ada}).json()
    assert session["name"] == "Ada"
    link = httpx.post(f"{server.http_url}/api/docs/notes/share", params={"token": ada}, json={"role": "edit"}).json()
    assert verify_token(SECRET, link["token"], "notes").name is None

    # Anyone with a link reads a version and its diff against now.
    read = http(server, f"versions/{first}", reader).json()
    assert read["text"] == "The quick brown fox." and read["id"] == first
    assert http(server, f"versions/{first}/diff", reader).json() == {
        "ops": [["=", "The quick brown fox."], ["+", " Jumps over."]]
    }
    assert http(server, "versions/999999", reader).status_code == 404
    assert http(server, "versions/abc", reader).json()["error"] == "bad_request"
    refused = http(server, f"versions/{first}/restore", reader, "POST")
    assert refused.status_code == 403 and refused.json()["error"] == "read_only"

    # Mallory types offline (concurrent with the restore), Ada restores version 1 and names Grace in the body.
    mallory.disconnect()
    mallory.insert(0, "Draft: ")
    restored = http(server, f"versions/{first}/restore", ada, "POST", json={"by": {"name": "Grace"}})
    assert restored.status_code == 200, restored.text
    restore = restored.json()["restore"]
    assert restore["kind"] == "restore" and restore["restored"] == first and restore["status"] == "done"
    assert restore["requester"] == {"name": "Ada", "color": None, "verified": True}
    ada_client.wait_text("The quick brown fox.")
    mallory.connect()
    for client in (ada_client, mallory):
        client.wait_text("Draft: The quick brown fox.")  # her typing survived the restore
    versions = listed_when(server, reader, lambda v: v[0]["kind"] == "typing" and len(v) == 4, "Mallory's typing")
    assert [v["kind"] for v in versions] == ["typing", "restore", "typing", "typing"]  # hers reached it last
    assert versions[1]["author"] == {"name": "Ada", "color": None, "verified": True, "kind": "person"}
    assert versions[1]["restored"] == first and versions[1]["redraft"]["id"] == restore["id"]

    # One step undoes it, through the redraft API; the undo is its own version, by whoever clicked (a body that
    # claims to be verified, or the AI, is a person with an unverified name).
    undone = httpx.post(f"{server.http_url}/api/docs/notes/redrafts/{restore['id']}/undo", params={"token": plain},
                        json={"by": {"name": "Ada", "color": "#d1495b", "verified": True, "kind": "ai"}})
    assert undone.status_code == 200, undone.text
    ada_client.wait_text("Draft: The quick brown fox. Jumps over.")
    versions = listed_when(server, reader, lambda v: v[0]["kind"] == "undo", "the undo's version")
    assert versions[0]["author"] == {"name": "Ada", "color": "#d1495b", "verified": False, "kind": "person"}
    assert versions[0]["redraft"]["id"] == restore["id"] and versions[0]["restored"] == first
    assert versions[0]["redraft"]["requester"]["verified"] is True  # the restore's requester, from her token
    after = http(server, f"versions/{versions[0]['id']}", reader).json()
    assert after["text"] == "Draft: The quick brown fox. Jumps over."
    same = http(server, f"versions/{after['id']}/restore", ada, "POST")  # the text already is that version's
    assert same.status_code == 409 and same.json()["error"] == "unchanged"
    # Versions of versions: the diff between two ids.
    assert http(server, f"versions/{first}/diff", reader, params={"against": str(after["id"])}
                ).json()["ops"] == [["+", "Draft: "], ["=", "The quick brown fox."], ["+", " Jumps over."]]


def test_a_client_cannot_claim_to_be_the_ai_or_the_server(start_server, py_clients):
    server = start_server()  # no secret: everyone edits, nobody is verified
    client = py_clients(server.ws_url, "notes", name="Redraft AI")
    client.wait_synced()
    client.insert(0, "hello")
    (version,) = listed_when(server, "", lambda v: len(v) == 1, "the version")
    assert version["author"] == {"name": "Redraft AI", "color": None, "verified": False, "kind": "person"}
    off = start_server("off", extra_args=("--history", "off"))
    assert httpx.get(f"{off.http_url}/api/docs/notes/versions").json()["error"] == "history_off"


# --- a redraft's versions: the AI with the instruction, model and requester; its undo its own version -------


class NamedModel(ScriptedBackend):
    def status(self):
        return {"mode": self.mode, "status": "ready", "model": "scripted-1"}


@pytest.fixture
async def redrafts(tmp_path):
    config = ServerConfig(data_dir=tmp_path, redraft_user_burst=100, redraft_doc_burst=100)
    services = Services.build(config)
    backend = services.redrafts.backend = NamedModel()
    await services.start()
    room = await services.rooms.acquire("doc")
    services.redrafts.script, services.redrafts.room = backend, room
    yield services
    services.rooms.release(room)
    await services.close()


async def redraft(service, passage: str, answer: str, verified_name: str | None = None, **body) -> str:
    """Asks for a redraft of `passage` as the API would for a token with `verified_name`; waits for its end."""
    service.script.answers.append(answer)
    start = str(service.room.text).index(passage)
    created = await service.create(
        "doc", {"start_index": start, "end_index": start + len(passage), **body}, "user", verified_name=verified_name
    )
    with anyio.fail_after(5):
        while created.status in ("queued", "running"):
            await asyncio.sleep(0.01)
    return created.id


async def newest_versions(services, count: int) -> list[dict]:
    """The `count` newest versions, once the room's writes have reached the store."""
    with anyio.fail_after(5):
        while True:
            versions, _ = await reading.page(services.store, "doc", 50, None, 60.0)
            if len(versions) >= count:
                return [version.to_json() for version in versions]
            await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_a_redraft_is_a_version_with_its_instruction_model_and_requester_and_so_is_its_undo(redrafts):
    service = redrafts.redrafts
    room = service.room
    room.local_change(lambda: room.text.insert(0, TEXT))
    # Her token says Ada; the body claims Grace: the history believes the token.
    rid = await redraft(service, "The quick brown fox jumps.", "A swift red fox leaps high.", verified_name="Ada",
                        requester={"name": "Grace", "color": "#112233"}, instruction="livelier")
    newest = (await newest_versions(redrafts, 2))[0]
    ada = {"name": "Ada", "color": "#112233", "verified": True, "kind": "person"}
    assert newest["kind"] == "redraft" and newest["entries"] == 1
    assert newest["author"] == {"name": "Redraft AI", "color": None, "verified": True, "kind": "ai"}
    assert newest["redraft"] == {"id": rid, "instruction": "livelier", "model": "scripted-1", "requester": ada}
    assert (await reading.text_at(redrafts.store, "doc", newest["id"])).startswith("Intro. A swift red fox")

    await service.command("doc", rid, "undo", {"name": "Bob", "color": "#00798c"})  # as the API passes a body's
    undo = (await newest_versions(redrafts, 3))[0]
    assert undo["kind"] == "undo" and undo["id"] > newest["id"]
    assert undo["author"] == {"name": "Bob", "color": "#00798c", "verified": False, "kind": "person"}
    assert undo["redraft"] == {"id": rid, "instruction": "livelier", "model": "scripted-1", "requester": ada}
    assert await reading.text_at(redrafts.store, "doc", undo["id"]) == TEXT
    # Nobody but the service sets "verified": the body's copy of it is dropped on the way in.
    assert parse_person({"name": "Eve", "verified": True}) == {"name": "Eve", "color": "#64748b"}


def test_redraft_token_signs_a_name(capsys, monkeypatch):
    from redraft.cli import main

    monkeypatch.setenv("REDRAFT_NAME", "gpu-0")  # a worker's consumer name in the environment is no holder's name
    assert main(["token", "--engine", "--secret", SECRET]) == 0
    assert main(["token", "--doc", "notes", "--secret", SECRET]) == 0
    assert verify_token(SECRET, capsys.readouterr().out.split()[-1], "notes") == Grant("edit", None, None)

    assert main(["token", "--doc", "notes", "--role", "read", "--secret", SECRET, "--name", "Ada Lovelace"]) == 0
    assert verify_token(SECRET, capsys.readouterr().out.strip(), "notes") == Grant("read", None, "Ada Lovelace")
    assert main(["token", "--doc", "notes", "--secret", SECRET, "--name", "x" * 65]) == 2
    assert "name must be 1 to 64" in capsys.readouterr().err
    assert main(["token", "--engine", "--secret", SECRET, "--name", "Ada"]) == 2
    assert "engine token has none" in capsys.readouterr().err
