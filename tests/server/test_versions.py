"""Version history as people see it: versions grouped from entries, pages, diffs, restore, and who wrote what
(server/history/versions.py, reading.py, api.py, restore.py; identity in server/auth.py)."""

from __future__ import annotations

import random

import anyio
import pytest

from server.auth import AuthError, Grant, mint_token, verify_token
from server.history import reading
from server.history.entry import Author, HistoryEntry, Origin
from server.history.versions import diff_ops, group
from server.redrafts.request import RedraftError
from server.stores.sqlite import SqliteStore

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


async def stored(tmp_path, drafts: list[HistoryEntry]) -> SqliteStore:
    store = SqliteStore(tmp_path / "history.db")
    await store.start()
    for draft in drafts:
        await store.append("notes", [draft.update], history=[draft])
    return store


@pytest.mark.anyio
async def test_pages_of_any_size_list_every_version_once_newest_first(tmp_path, monkeypatch):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    monkeypatch.setattr(reading, "CHUNK", 7)  # small chunks: versions span many store reads
    store = await stored(tmp_path, random_entries(rng, 300))
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
async def test_an_unknown_version_is_404_and_a_folded_one_410(tmp_path):
    store = await stored(tmp_path, [HistoryEntry(0, float(at), b"\x00\x00", ADA, Origin(), f"i:{at}") for at in range(6)])
    try:
        entries = await store.history("notes")
        seqs = [e.seq for e in entries]
        merged = HistoryEntry(seqs[3], entries[3].at, b"\x00\x00", ADA, Origin("merged"), None, (ADA,))
        await store.fold_history("notes", seqs[1:4], merged, [])
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
