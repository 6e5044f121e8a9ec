"""Undo and redo of any redraft by text (server/redrafts/revert.py)."""

from __future__ import annotations

import random

import pytest

from server.redrafts import merge, revert


def apply(text: str, ops) -> str:
    for start, end, replacement in reversed(ops):
        text = text[:start] + replacement + text[end:]
    return text


def redraft(text: str, passage: str, result: str, at: int | None = None) -> revert.Change:
    """What the service keeps after merging `result` over `passage` (at `at`, or its first occurrence)."""
    at = text.index(passage) if at is None else at
    return revert.changed(text, [(at + s, at + e, r) for s, e, r in merge.edits(passage, result)])


def take_back(change: revert.Change, now: str) -> revert.Change:
    """An undo (or redo): the inverse applied to the text now; returns the change it made."""
    moved = revert.rebase(change, now)
    assert isinstance(moved, revert.Change), moved
    return revert.changed(now, list(moved.inverse))


def test_the_diff_is_exact_and_leaves_unchanged_text_alone():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    alphabet = "ab c😀é.\n"
    for _ in range(1500):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert apply(old, revert.diff(old, new)) == new, seed
    # No folding, and a shortest script of pure deletions and inserts (each can slide along equal text).
    assert revert.diff("one two three four", "one TWO three FOUR") == [(4, 7, ""), (7, 7, "TWO"), (14, 18, ""),
                                                                        (18, 18, "FOUR")]
    assert revert.diff("para one\npara two\n", "para one\nGrace para two\n") == [(9, 9, "Grace ")]


START = "Intro. The quick brown fox jumps. Middle text here. The lazy dog sleeps now. Outro."


def test_an_older_redraft_is_undone_after_later_ones_and_others_typing_and_redone():
    text = START
    first = redraft(text, "The quick brown fox jumps.", "A swift red fox leaps high.")
    text = first.landed.replace("Middle", "Grace typed. Middle")  # someone types between the redrafts
    second = redraft(text, "The lazy dog sleeps now.", "A tired hound naps.")
    text = second.landed.replace("Outro", "Ada's outro")
    assert text == "Intro. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. Ada's outro."

    undo_first = take_back(first, text)  # the older one, with a later redraft and typing after it
    assert undo_first.landed == "Intro. The quick brown fox jumps. Grace typed. Middle text here. A tired hound naps. Ada's outro."
    text = undo_first.landed.replace("Intro", "Intro!")
    redo_first = take_back(undo_first, text)
    assert redo_first.landed == "Intro!. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. Ada's outro."
    undo_second = take_back(second, redo_first.landed)
    assert undo_second.landed == "Intro!. A swift red fox leaps high. Grace typed. Middle text here. The lazy dog sleeps now. Ada's outro."


def test_a_later_redraft_over_the_same_words_blocks_until_it_is_undone():
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    later = redraft(first.landed, "A swift red fox leaps high.", "One swift red fox jumped high.")
    blocked = revert.rebase(first, later.landed)
    assert isinstance(blocked, revert.Touched) and blocked.num_words == 2  # "One" and "jumped" replaced its words
    # What the later redraft typed there (character-level: "leaps" -> "jumped" keeps some letters).
    typed = "".join(later.landed[s:e] for s, e in blocked.inserted)
    assert typed.startswith("One") and set(typed[3:]) <= set("jumped")
    undone = take_back(later, later.landed)
    assert undone.landed == first.landed
    # yrs' UndoManager left "A" and "leaps" behind here; text positions have no such chain.
    assert take_back(first, undone.landed).landed == START


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t.replace("swift red", "swift, very red"), 1),  # typed inside its text
        (lambda t: t.replace("swift red fox", "fox"), 2),  # deleted two of its words
        (lambda t: t.replace("leaps high", "leapt high"), 1),  # changed one letter of a word it wrote
    ],
)
def test_undo_is_refused_when_others_edited_the_words_it_wrote(edit, words):
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    touched = revert.rebase(first, edit(first.landed))
    assert isinstance(touched, revert.Touched) and touched.num_words == words
    # Typing right beside its words, or anywhere else, is no obstacle.
    beside = first.landed.replace("A swift", "Then A swift").replace("high.", "high. Really.")
    assert take_back(first, beside).landed == START.replace("The quick", "Then The quick").replace("jumps.", "jumps. Really.")


def test_redo_is_refused_when_others_edited_what_the_undo_put_back():
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    undone = take_back(first, first.landed)
    touched = revert.rebase(undone, undone.landed.replace("quick brown", "quick XX brown"))
    assert isinstance(touched, revert.Touched) and touched.inserted and touched.num_words >= 1


def test_a_removal_whose_place_was_deleted_is_not_put_back():
    first = redraft(START, "The quick brown fox jumps.", "The fox jumps.")  # removes "quick brown "
    gone = first.landed.replace("Intro. The fox jumps.", "Intro.")
    touched = revert.rebase(first, gone)
    assert isinstance(touched, revert.Touched) and touched.is_context_gone


def test_followed_edits_elsewhere_never_stop_an_undo_and_it_restores_exactly():
    """Edits known exactly (a transaction's delta, as the server follows them while a document is loaded):
    anything typed or deleted outside what the redraft wrote, however alike the text, leaves it undoable,
    and the undo puts the passage back exactly around those edits."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    words = ["alpha", "beta", "a", "😀", "é", "\n", " ", ".", ","]
    for _ in range(300):
        before = "".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        passage = "".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        after = "".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        first = redraft(before + passage + after, passage, "".join(rng.choice(words) for _ in range(rng.randint(1, 6))),
                        at=len(before))
        # Each character with the number of the inverse range that wrote it (or None), to follow them; a range
        # that only removed text is an empty element where the text was.
        chars, tags = list(first.landed), [None] * len(first.landed)
        for number, (start, end, _) in reversed(list(enumerate(first.inverse))):
            if start == end:
                chars[start:start], tags[start:start] = [""], [number]
            else:
                tags[start:end] = [number] * (end - start)

        def position(index):  # the text position of a list index
            return sum(1 for char in chars[:index] if char)

        for _ in range(rng.randint(0, 5)):
            at = rng.randint(0, len(chars))
            if rng.random() < 0.5:  # typing anywhere but strictly inside one range's characters
                if 0 < at < len(chars) and tags[at - 1] is not None and tags[at - 1] == tags[at]:
                    continue
                while at and chars[at - 1] == "":  # typed where text was removed: before its return
                    at -= 1
                typed = rng.choice(words)
                edits = [(position(at), position(at), typed)]
                chars[at:at], tags[at:at] = list(typed), [None] * len(typed)
            else:  # deleting text nobody but the others wrote, not across a removal's place
                end = min(len(chars), at + rng.randint(1, 3))
                if any(tag is not None for tag in tags[at:end]):
                    continue
                edits = [(position(at), position(end), "")]
                del chars[at:end], tags[at:end]
            moved = revert.rebase_along(first, "".join(chars), edits)
            assert isinstance(moved, revert.Change), seed
            first = moved
        undone = revert.changed("".join(chars), list(first.inverse))
        expected, at = [], 0
        while at < len(chars):  # each range's characters (still together) give way to what was there before
            if tags[at] is None:
                expected.append(chars[at])
                at += 1
            else:
                number = tags[at]
                while at < len(chars) and tags[at] == number:
                    at += 1
                expected.append(first.inverse[number][2])
        assert undone.landed == "".join(expected), seed


def test_a_diff_of_unrelated_edits_elsewhere_leaves_an_undo_possible():
    """The same without the deltas (a document reloaded since): a diff has to find what others did, and it
    is not misled by typing that shares no characters with the text."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "😀", "é", "\n", " ", ".", ","]
    for number in range(200):
        before = "".join(rng.choice(words) + " " for _ in range(rng.randint(3, 12)))
        passage = "".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + "."
        after = "".join(rng.choice(words) + " " for _ in range(rng.randint(3, 12)))
        first = redraft(before + passage + after, passage, "".join(rng.choice(words) for _ in range(1, 6)) + "!",
                        at=len(before))
        now, head, tail = first.landed, len(before), len(first.landed) - len(after)
        for _ in range(rng.randint(0, 3)):
            at = rng.choice([rng.randint(0, head), rng.randint(tail, len(now))])
            typed = f"#{number}#"
            now = now[:at] + typed + now[at:]
            if at <= head:
                head, tail = head + len(typed), tail + len(typed)
        undone = take_back(first, now)
        assert undone.landed == now[:head] + passage + now[tail:], seed
        assert take_back(undone, undone.landed).landed == now, seed


def test_random_edits_elsewhere_never_stop_an_undo_and_it_restores_exactly():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "😀", "é", "\n", " ", ".", ","]
    for _ in range(300):
        before = "".join(rng.choice(words) + " " for _ in range(rng.randint(3, 12)))
        passage = "".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + "."
        after = "".join(rng.choice(words) + " " for _ in range(rng.randint(3, 12)))
        # What it wrote begins and ends with characters found nowhere else. Text at an edge that repeats what
        # it wrote ("alpha" typed before an "alpha" it wrote) is whose by no diff, and may come back on the
        # other side of the passage (revert.py's docstring: nothing is lost); here whose is always clear.
        result = "¡" + "".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + "!"
        first = redraft(before + passage + after, passage, result, at=len(before))
        # Others type and delete only outside what the redraft wrote: before it (head moves) or after it.
        now, head, tail = first.landed, len(before), len(first.landed) - len(after)
        for _ in range(rng.randint(0, 4)):
            at = rng.choice([rng.randint(0, head), rng.randint(tail, len(now))])
            if rng.random() < 0.5:
                typed = "#" + rng.choice(words)  # marked: what others typed reads apart from what was there
                now = now[:at] + typed + now[at:]
                if at <= head:
                    head, tail = head + len(typed), tail + len(typed)
            else:
                span = rng.randint(1, 3)
                if at + span <= head:
                    now, head, tail = now[:at] + now[at + span :], head - span, tail - span
                elif at >= tail:
                    now = now[:at] + now[at + span :]
        undone = take_back(first, now)
        assert undone.landed == now[:head] + passage + now[tail:], seed
        assert take_back(undone, undone.landed).landed == now, seed
