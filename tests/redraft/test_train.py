"""`redraft train`: registered in the server's command line, usage errors, and a from-scratch run end to end."""

from __future__ import annotations

import pytest

from engine.model.config import TRAINABLE_CONFIGS
from engine.weights.checkpoint import load_model
from redraft.cli import main as redraft
from tests.support.corpora import synthetic_sources
from training.corpus import load_documents
from training.corpus_file import CorpusFile, write_corpus_file
from training.lexicon import WordList


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give --corpus (train from scratch) or --data with --model (fine-tune), not both"),
        (["--corpus", "python-docs", "--data", "x.jsonl", "--out", "o"], "not both"),
        (["--corpus", "python-docs"], "--out is required"),
        (["--data", "x.jsonl", "--out", "o"], "--data needs --model"),
        (["--eval-only", "--data", "x.jsonl"], "--eval-only evaluates --model; it takes no --data"),
        (["--export-held-out", "f.txt"], "--export-held-out needs --corpus"),
        (["--corpus", "python-docs", "--out", "o", "--steps", "many"], "--steps must be an integer, got 'many'"),
        (["--corpus", "python-docs", "--out", "o", "--config", "huge"], "--config must be one of redraft-small"),
        (["--export-corpus", "c.json.gz"], "--export-corpus packs the installed --corpus: give --corpus alone"),
        (["--corpus", "python-docs", "--corpus-dir", "d", "--export-corpus", "c.json.gz"], "give --corpus alone"),
        (["--corpus", "python-docs", "--corpus-dir", "d", "--corpus-file", "c", "--out", "o"], "not both"),
    ],
)
def test_usage_errors_exit_2_with_a_reason(argv, message, capsys):
    assert redraft(["train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_corpus_names_the_install_command(tmp_path, capsys):
    argv = ["train", "--corpus", "python-docs", "--corpus-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    assert redraft(argv) == 1
    assert "apt-get install -y --no-install-recommends python3.11-doc" in capsys.readouterr().err


def test_from_scratch_trains_saves_and_evaluates(tmp_path, capsys):
    sources, out = tmp_path / "sources", tmp_path / "model"
    synthetic_sources(sources)
    argv = ["train", "--corpus", "python-docs", "--corpus-dir", str(sources), "--out", str(out), "--steps", "2",
            "--batch-size", "2", "--device", "cpu", "--seed", "3"]
    assert redraft(argv) == 0
    captured = capsys.readouterr()
    assert "step 2/2" in captured.err
    assert "| noise | accuracy: unigram | model, 1 pass | model, self-cond. | nats/token: unigram |" in captured.out
    assert captured.out.count("[rewrite]") == 3 and captured.out.count("[fill]") == 3
    loaded = load_model(str(out))
    assert loaded.args == TRAINABLE_CONFIGS["redraft-small"]
    assert len(loaded.tokenizer) == 8192
    assert loaded.tasks.tasks == ("fix",) and loaded.tasks.canvas_init == "passage"
    assert loaded.generation.edit_entropy_bound == 0.5  # declared beside the tasks, set by the loader
    assert loaded.tasks.lexicon == "lexicon.txt" and loaded.lexicon.knows("thunderstorm")  # the word list's too
    assert "python3.11-doc" in (out / "LICENSES.txt").read_text()
    assert {p.name for p in out.iterdir()} >= {"config.json", "generation_config.json", "model.safetensors",
                                               "tokenizer.json", "tokenizer_config.json", "token_counts.json",
                                               "LICENSES.txt", "lexicon.txt"}


def test_a_packed_corpus_trains_with_its_own_licences_and_word_list(tmp_path, capsys):
    """A GPU machine without the packages trains from --corpus-file: the licences and the word list beside the
    weights are the pack's, not this machine's."""
    sources, packed, out = tmp_path / "sources", tmp_path / "corpus.json.gz", tmp_path / "model"
    synthetic_sources(sources)
    write_corpus_file(CorpusFile("python-docs", load_documents(sources), "THE PACKED LICENCES\n",
                                 WordList(("thunderstorm",), "The packed word list's terms.")), packed)
    argv = ["train", "--corpus", "python-docs", "--corpus-file", str(packed), "--out", str(out), "--steps", "2",
            "--batch-size", "2", "--device", "cpu", "--seed", "3"]
    assert redraft(argv) == 0
    assert "31 training and 2 held-out documents of python-docs" in capsys.readouterr().err  # synthetic_sources
    licences = (out / "LICENSES.txt").read_text()
    assert licences.startswith("THE PACKED LICENCES") and licences.rstrip().endswith("The packed word list's terms.")
    assert load_model(str(out)).lexicon.knows("thunderstorm")
    assert redraft([*argv[:2], "english-docs", *argv[3:]]) == 2  # a pack of another corpus
    assert f"{packed} packs the corpus python-docs, not english-docs" in capsys.readouterr().err
