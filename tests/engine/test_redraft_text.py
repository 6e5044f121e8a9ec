"""Model output as text (engine/redrafts.py): no U+FFFD from a character cut mid-way, and progress over canvases."""

from __future__ import annotations

from types import SimpleNamespace

from engine import redrafts
from engine.tokenizer import NUM_BYTE_TOKENS, SPECIALS, byte_tokenizer

EOS = SPECIALS.index("<eos>")


def ids(data: bytes) -> list[int]:
    """Byte-level token ids of raw bytes (one token a byte)."""
    return [len(SPECIALS) + b for b in data]


def decoder() -> redrafts.TextDecoder:
    return redrafts.TextDecoder(byte_tokenizer(len(SPECIALS) + NUM_BYTE_TOKENS + 9), (EOS,))


def test_a_character_cut_by_the_end_of_the_output_is_dropped_not_replaced():
    text = decoder()
    cut = ids("déjà vu 😀".encode())[:-2]  # the emoji's last two bytes never came
    assert text.text(cut) == "déjà vu "
    assert text.text(ids("ok ".encode()) + ids("é".encode())[:1] + [EOS] + ids(b"after")) == "ok "
    assert text.text(ids(b"a\xff\xfeb")) == "ab"  # bytes that are no UTF-8 at all


def test_pieces_give_a_split_character_whole_to_its_last_token():
    text = decoder()
    assert text.pieces(ids("a😀b".encode())) == ["a", "", "", "", "😀", "b"]
    assert text.pieces(ids("é".encode())[:1]) == [""]  # still waiting for its second byte


def snapshot(canvas_index: int, step: int, tokens: list[int], max_steps: int = 4):
    return SimpleNamespace(step=step, max_steps=max_steps, canvas_index=canvas_index, token_ids=tokens,
                           entropy=[0.0] * len(tokens), stopped=step == max_steps, finished=False)


def test_progress_shows_the_whole_text_and_only_goes_up_across_canvases():
    text = decoder()
    first = ids("Hello wor".encode()) + ids("😀".encode())[:2]  # the canvas ends inside the emoji
    second = ids("😀".encode())[2:] + ids(b"ld")
    seen = [redrafts.progress(snapshot(0, step, first), [], text, num_canvases=3) for step in (1, 4)]
    seen += [redrafts.progress(snapshot(1, step, second), first, text, num_canvases=3) for step in (1, 2)]
    assert [p["progress"] for p in seen] == [{"step": s, "max_steps": 12} for s in (1, 4, 5, 6)]
    last = seen[-1]
    assert last["text"] == "Hello wor😀ld"
    # The earlier canvas as one sure piece, then this canvas: the emoji lands whole on its last byte.
    assert last["tokens"] == [["Hello wor", 1.0], ["", 1.0], ["😀", 1.0], ["l", 1.0], ["d", 1.0]]
    assert "\ufffd" not in "".join(piece for piece, _ in seen[0]["tokens"])
