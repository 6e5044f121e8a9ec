"""bench/gpu_train.sh's plumbing on the CPU (--dry-run): training from a packed corpus, the side-by-side
measurement, and the two files a GPU loan brings back ($OUT holds at most 8)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="training needs the engine extra (torch)")

from tests.support.benches import dry_run  # noqa: E402
from tests.support.corpora import synthetic_sources  # noqa: E402
from training.corpus import load_documents  # noqa: E402
from training.corpus_file import CorpusFile, write_corpus_file  # noqa: E402
from training.lexicon import WordList  # noqa: E402


@pytest.mark.timeout(400)
def test_the_dry_run_trains_from_the_pack_measures_both_models_and_packs_two_files(tmp_path):
    synthetic_sources(tmp_path / "sources")
    packed = tmp_path / "corpus.json.gz"
    words = WordList(("the", "meeting", "budget"), "terms")
    write_corpus_file(CorpusFile("python-docs", load_documents(tmp_path / "sources"), "LICENCES\n", words), packed)
    out = tmp_path / "out"
    printed, left = dry_run("gpu_train.sh", out, 380, CORPUS="python-docs", CORPUS_FILE=str(packed))
    assert sorted(left) == ["summary.md", "train.tar.gz"]
    work = left["train.tar.gz"]
    ended = {line.split()[0]: int(line.split()[1]) for line in (work / "steps.txt").read_text().splitlines()}
    assert ended == {"train": 0, "quality": 0}
    config = json.loads((work / "redraft-small" / "config.json").read_text())
    assert config["redraft"]["lexicon"] == "lexicon.txt" and (work / "redraft-small" / "model.safetensors").is_file()
    assert (work / "redraft-small" / "LICENSES.txt").read_text().startswith("LICENCES")  # the pack's
    quality = json.loads((work / "quality.json").read_text())
    shipped, trained = (quality["models"][name] for name in quality["models"])  # both, every task measured
    assert shipped["tasks"] == trained["tasks"] == ["shorten", "fix", "fill", "continue"]  # in EVALUATED order
    summary = (out / "summary.md").read_text()
    assert "| train | 0 |" in summary and "| quality | 0 |" in summary
    assert "| task: figure | shipped | trained |" in summary
    assert summary in printed  # printed last as well
