"""The word-level measures of training/text_metrics.py on hand-made texts whose answers are counted by hand."""

from __future__ import annotations

import pytest

from training.text_metrics import (
    align,
    content_kept,
    content_words,
    dictionary_words,
    fix_counts,
    is_known,
    load_dictionary,
    markup_count,
    replacement_count,
    word_errors,
)

WORDS = frozenset({"the", "cat", "sat", "on", "mat", "well", "known", "isn't", "model", "s", "english"})


def test_a_word_is_known_by_its_letters_whatever_its_case_and_punctuation():
    assert is_known("The", WORDS) and is_known("“cat,”", WORDS) and is_known("(mat).", WORDS)
    assert is_known("ENGLISH", WORDS)
    assert is_known("teh", WORDS) is False
    assert is_known("cats", WORDS) is False  # no stemming: the dictionary lists the forms it knows


def test_apostrophes_and_hyphens_split_a_word_unless_the_dictionary_has_it_whole():
    assert is_known("isn't", WORDS) and is_known("isn’t", WORDS)  # an entry of its own, curly or straight
    assert is_known("well-known", WORDS) and is_known("model's", WORDS)  # read as well + known, model + s
    assert is_known("well-knwon", WORDS) is False  # every part must be a word
    assert is_known("isn", WORDS) is False


def test_numbers_count_as_known_and_punctuation_alone_is_no_word():
    for number in ("42", "2026", "3.5", "1,000", "10th", "1990s", "6:30", "2-3"):
        assert is_known(number, WORDS), number
    for mark in ("—", "-", "...", "&", "“”"):
        assert is_known(mark, WORDS) is None, mark


def test_dictionary_words_counts_words_only():
    # the, cat, sat, on, mat, 42 known; teh, xqz not; the dash is no word
    assert dictionary_words("The cat sat — on teh mat xqz 42.", WORDS) == (6, 8)
    assert dictionary_words("", WORDS) == (0, 0)


def test_the_installed_dictionary_knows_everyday_english():
    dictionary = load_dictionary()
    assert dictionary_words("I don't think Python's e-mail isn't well-known here.", dictionary) == (8, 8)
    assert dictionary_words("Teh stucture was runing", dictionary) == (1, 4)


def test_word_errors_is_the_word_edit_distance_over_the_reference_words():
    assert word_errors("a b c d", "a b c d") == (0, 4)
    assert word_errors("a b c d", "a x c d") == (1, 4)  # one substitution
    assert word_errors("a b c d", "a c d") == (1, 4)  # one deletion
    assert word_errors("a b c d", "a b b c d e") == (2, 4)  # two insertions
    assert word_errors("a b", "") == (2, 2)
    assert word_errors("The cat.", "the cat") == (2, 2)  # exact: case and punctuation count


def test_align_pairs_the_words_an_optimal_alignment_keeps():
    assert align("a b c d".split(), "a x c d".split()) == (1, {0, 2, 3})
    assert align("a b c d".split(), "b c d a".split()) == (2, {1, 2, 3})
    assert align("a b a".split(), "a".split()) == (2, {2})  # one of the a's, not both
    assert align([], ["a"]) == (1, set())


def test_fix_counts_slips_removed_and_correct_words_broken():
    clean = "The cat sat on the mat"
    shown = "Teh cat sat on the mta"  # two slips
    counts = fix_counts(clean, shown, "The cat sit on the mat")  # both removed, "sat" broken
    assert (counts.clean_words, counts.input_errors, counts.output_errors) == (6, 2, 1)
    assert (counts.injected, counts.removed, counts.intact, counts.broken) == (2, 2, 4, 1)
    unchanged = fix_counts(clean, shown, shown)  # the passage back as it was: nothing removed, nothing broken
    assert (unchanged.output_errors, unchanged.removed, unchanged.broken) == (2, 0, 0)
    dropped = fix_counts(clean, shown, "The cat sat the mta")  # "on" dropped, one slip left
    assert (dropped.output_errors, dropped.removed, dropped.broken) == (2, 1, 1)


def test_fix_counts_needs_the_shown_text_word_for_word():
    with pytest.raises(ValueError):
        fix_counts("a b c", "a bc", "a b c")


def test_content_words_leave_out_stop_words_case_and_punctuation():
    expected = {"quick", "brown", "fox", "jumps", "lazy", "dog"}
    assert content_words("The quick brown fox jumps over the lazy dog.") == expected
    assert content_words("It is -- what it is.") == set()


def test_content_kept_counts_the_source_words_found_in_the_output():
    source = "The quick brown fox jumps over the lazy dog."
    assert content_kept(source, "A quick fox jumped over a DOG!") == (3, 6)  # quick, fox, dog
    assert content_kept(source, source) == (6, 6)
    assert content_kept(source, "") == (0, 6)
    assert content_kept("it is", "anything") == (0, 0)


def test_markup_counts_each_mark_of_code_and_markup():
    text = "Use `len()` and **bold** with <b>tags</b> here::\n  # a heading\n```code```"
    # 2 backticks, 2 **, 2 tags, 1 ::, 1 leading #, 2 backtick runs
    assert markup_count(text) == 10
    assert markup_count("a < b and c > d, 3 * 4 = 12, C# is fine, 10:30 and 'quoted'") == 0


def test_replacement_count():
    assert replacement_count("a\ufffdb\ufffd") == 2 and replacement_count("plain") == 0
