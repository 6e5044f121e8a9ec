"""The redraft quality evaluation (training/text_quality.py): its inputs, its figures, and whole runs of tiny
random models through the engine, which must give the same figures and outputs twice."""

from __future__ import annotations

import json
import shutil

import pytest

from jobs.tasks import EVERY_TASK, ModelTasks
from training import text_quality
from training.corpus import sentences
from training.text_quality import (
    EVALUATED,
    UNDECLARED,
    Item,
    build_items,
    evaluate,
    evaluated_tasks,
    format_table,
    main,
    measure,
)

PARAGRAPHS = [
    "The meeting moved to Thursday. Everyone should send their ideas to Maria by Friday.",
    "Rain arrives late in the evening. Drivers should expect ice on the mountain roads after dark.",
]
WORDS = frozenset("the cat sat on mat a".split())


def test_fix_items_show_the_paragraph_with_slips_word_for_word():
    paragraph = " ".join(["Everyone should send their thoughtful ideas to Maria before Friday evening."] * 8)
    (item,) = build_items("fix", [paragraph])
    shown, clean = item.shown.split(), paragraph.split()
    assert item.reference == paragraph and item.spec["passage"] == item.shown
    assert len(shown) == len(clean)
    slipped = sum(a != b for a, b in zip(shown, clean, strict=True))
    assert 1 <= slipped <= len(clean) // 4  # 8 % of 80 words: a few, not none, not most
    assert item.spec["kind"] == "rewrite" and item.spec["task"] == "fix"
    assert item.spec["instruction"].startswith("Fix spelling")


def test_items_depend_on_the_paragraph_and_the_seed_not_on_its_place():
    forward = {item.reference: item.spec for item in build_items("fix", PARAGRAPHS, seed=3)}
    backward = {item.reference: item.spec for item in build_items("fix", PARAGRAPHS[::-1], seed=3)}
    assert [{**spec, "id": ""} for spec in forward.values()] == [
        {**backward[paragraph], "id": ""} for paragraph in forward
    ]
    assert build_items("fill", PARAGRAPHS, seed=3) == build_items("fill", PARAGRAPHS, seed=3)
    assert [i.spec["seed"] for i in build_items("fill", PARAGRAPHS, seed=3)] != [
        i.spec["seed"] for i in build_items("fill", PARAGRAPHS, seed=4)
    ]


def test_fill_takes_out_one_sentence_and_continue_shows_the_first_half():
    for item in build_items("fill", PARAGRAPHS):
        paragraph = PARAGRAPHS[item.paragraph]
        assert item.reference in sentences(paragraph)
        assert item.spec["before"] + item.reference + item.spec["after"] == paragraph
        assert "passage" not in item.spec and item.spec["kind"] == "fill"
    assert build_items("fill", ["One sentence only, with nothing around it to fill between."]) == []
    for item in build_items("continue", PARAGRAPHS):
        paragraph = PARAGRAPHS[item.paragraph]
        assert item.spec["before"] + " " + item.reference == paragraph
        assert len(item.spec["before"].split()) == len(paragraph.split()) // 2


def test_rewrite_and_shorten_show_the_paragraph_with_their_own_instruction():
    rewrite, shorten = build_items("rewrite", PARAGRAPHS[:1])[0], build_items("shorten", PARAGRAPHS[:1])[0]
    assert rewrite.spec["passage"] == shorten.spec["passage"] == PARAGRAPHS[0]
    assert shorten.spec["instruction"].startswith("Make this passage shorter")
    assert rewrite.spec["instruction"] != shorten.spec["instruction"]


def test_evaluated_tasks_are_the_declared_ones_or_the_old_three():
    assert evaluated_tasks(EVERY_TASK) == UNDECLARED == ("rewrite", "fill", "continue")
    declared = ModelTasks(("shorten", "fix", "instruct", "continue", "fill"), "passage")
    assert evaluated_tasks(declared) == ("shorten", "fix", "fill", "continue")  # instruct: not measured here
    assert evaluated_tasks(ModelTasks(tuple(EVERY_TASK.tasks))) == EVALUATED  # declares all: means it
    # --tasks: those the model accepts; a model without a declaration accepts any
    assert evaluated_tasks(EVERY_TASK, ("fix", "shorten")) == ("shorten", "fix")
    assert evaluated_tasks(declared, ("rewrite", "fix")) == ("fix",)


def test_measure_pools_the_counts_of_every_paragraph():
    items = [
        Item("fix", 0, {}, "Teh cat sat on the mta", "The cat sat on the mat"),
        Item("fix", 1, {}, "a cat", "a cat"),
        Item("fix", 2, {}, "the mat", "the mat"),
    ]
    outputs = [{"text": "The cat sit on the mat", "complete": False}, {"text": "a cat `x`"}, {"error": "refused"}]
    figures = measure(items, outputs, WORDS)
    assert figures["paragraphs"] == 3 and figures["refused"] == 1 and figures["cut"] == 1
    # words of the answered outputs: The cat sit on the mat | a cat `x` -> known 5 + 2 of 9
    assert figures["dictionary_words"] == pytest.approx(7 / 9)
    assert figures["wer_input"] == pytest.approx(2 / 8) and figures["wer_output"] == pytest.approx(2 / 8)
    assert figures["slips_removed"] == 1.0 and figures["words_broken"] == pytest.approx(1 / 6)
    assert figures["content_kept"] == pytest.approx(3 / 4)  # cat, sat, mat | cat: all but sat kept
    assert figures["length_ratio"] == pytest.approx(9 / 8)
    assert figures["markup"] == 2 and figures["empty"] == 0 and figures["words_out"] == 4.5


def test_measure_of_fill_has_no_passage_figures_and_counts_empty_outputs():
    items = [Item("fill", 0, {}, "before|after", "The cat sat."), Item("fill", 1, {}, "x|y", "On the mat.")]
    figures = measure(items, [{"text": ""}, {"text": "the \ufffdcat"}], WORDS)
    assert figures["empty"] == 1 and figures["replacement_chars"] == 1
    assert figures["dictionary_words"] == pytest.approx(1 / 2)  # "the" known, "\ufffdcat" not
    assert "content_kept" not in figures and "wer_output" not in figures
    assert measure([], [], WORDS)["dictionary_words"] is None


def test_the_table_puts_models_side_by_side_with_a_dash_where_a_model_does_not_do_the_task():
    metrics = {"paragraphs": 1, "refused": 0, "dictionary_words": 0.5, "words_out": 2.0, "empty": 0, "cut": 0,
               "replacement_chars": 0, "markup": 0}
    result = {
        "settings": {"paragraphs": 1, "seed": 0, "steps": None, "fix_rate": 0.08, "paragraph_dictionary_words": 0.75},
        "models": {
            "old": {"tasks": ["fill"], "metrics": {"fill": metrics}},
            "new": {"tasks": ["fill", "continue"],
                    "metrics": {"fill": metrics, "continue": {**metrics, "dictionary_words": 0.25}}},
        },
        "timings": {"old": {"fill": {"p50_seconds": 0.5}},
                    "new": {"fill": {"p50_seconds": 1.25}, "continue": {"p50_seconds": 2.0}}},
    }
    lines = format_table(result).splitlines()
    assert lines[0].endswith("dictionary words in the paragraphs themselves: 75.0 %")
    assert "| task: figure | old | new |" in lines
    assert "| fill: dictionary words | 50.0 % | 50.0 % |" in lines
    assert "| continue: dictionary words | — | 25.0 % |" in lines
    assert "| fill: seconds per paragraph, p50 | 0.50 | 1.25 |" in lines
    assert "| continue: seconds per paragraph, p50 | — | 2.00 |" in lines
    assert not any(line.startswith("| rewrite") for line in lines)  # no model does it


@pytest.fixture(scope="module")
def declared_checkpoint(checkpoint, tmp_path_factory):
    """The tiny checkpoint with a declaration of two tasks."""
    directory = tmp_path_factory.mktemp("declared") / "ckpt"
    shutil.copytree(checkpoint(), directory)
    config = json.loads((directory / "config.json").read_text())
    config["redraft"] = {"tasks": ["fix", "continue"], "canvas_init": "noise", "note": "a test model"}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_whole_run_through_the_engine_gives_the_same_figures_and_outputs_twice(checkpoint, declared_checkpoint):
    models = [str(checkpoint()), str(declared_checkpoint)]
    first = evaluate(models, PARAGRAPHS, seed=5, steps=4)
    second = evaluate(models, PARAGRAPHS, seed=5, steps=4)
    timings = first.pop("timings"), second.pop("timings")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    undeclared, declared = (first["models"][name] for name in models)
    assert undeclared["tasks"] == ["rewrite", "fill", "continue"] and declared["tasks"] == ["fix", "continue"]
    assert set(declared["metrics"]["fix"]) >= {"wer_input", "wer_output", "slips_removed", "words_broken"}
    for name, report in zip(models, (undeclared, declared), strict=True):
        for task in report["tasks"]:
            outputs = report["outputs"][task]
            assert len(outputs) == report["metrics"][task]["paragraphs"] > 0
            assert all("text" in output for output in outputs), outputs  # none refused
            assert len(timings[0][name][task]["seconds"]) == len(outputs)
    # A random model writes bytes, not words, and its fix is no fix.
    assert declared["metrics"]["fix"]["wer_output"] > declared["metrics"]["fix"]["wer_input"]
    # The same model, the same task, the same items: the same outputs whether declared or not.
    assert undeclared["outputs"]["continue"] == declared["outputs"]["continue"]


def test_the_command_prints_the_table_and_writes_the_json(checkpoint, tmp_path, capsys, monkeypatch):
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\n\n".join(PARAGRAPHS + ["A third paragraph. It is left out by the limit."]) + "\n")
    out = tmp_path / "report.json"
    threads = []
    monkeypatch.setattr("torch.set_num_threads", threads.append)  # the session keeps its one thread
    assert main(["--models", str(checkpoint()), "--paragraphs", str(paragraphs), "--limit", "2", "--tasks",
                 "fill,fix", "--steps", "3", "--threads", "3", "--json", str(out), "--show", "1"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("2 paragraphs, seed 0, steps 3")
    assert f"{checkpoint()}, fill:\n- shown:  {build_items('fill', PARAGRAPHS)[0].shown}\n  output: " in table
    assert "| fix: slips removed |" in table and "| fill: dictionary words |" in table and "rewrite" not in table
    report = json.loads(out.read_text())
    assert report["settings"]["threads"] == 3 and threads == [3]
    assert report["settings"]["files"] == [str(paragraphs)]
    assert report["settings"]["paragraph_dictionary_words"] == 1.0
    assert report["models"][str(checkpoint())]["tasks"] == ["fix", "fill"]
    assert [o["paragraph"] for o in report["models"][str(checkpoint())]["outputs"]["fill"]] == [0, 1]


def test_the_command_refuses_an_unknown_task(capsys):
    with pytest.raises(SystemExit):
        main(["--tasks", "fix,translate"])
    assert "--tasks takes" in capsys.readouterr().err


def test_the_default_inputs_include_the_everyday_paragraphs():
    files = text_quality.default_paragraph_files()
    assert text_quality.EVERYDAY in files
    everyday = text_quality.read_paragraphs([text_quality.EVERYDAY])
    assert len(everyday) == 10 and all(50 <= len(p.split()) <= 110 for p in everyday)
    assert all(len(sentences(p)) >= 2 for p in everyday)  # each can have a sentence filled


def test_a_passage_model_that_copies_its_canvas_gives_the_passage_back_and_fixes_nothing(checkpoint, monkeypatch,
                                                                                          tmp_path):
    """Through the engine's passage-started canvases (canvas_init "passage"): the figures of an output that is
    the input itself. tests/engine/copying.py comes with them."""
    copying = pytest.importorskip("tests.engine.copying")
    import engine.weights.checkpoint
    from tests.engine.tiny import TinySpec, spec_with
    from training.examples import end_of_turn_id

    paragraph = "The meeting moved to Thursday, so send your ideas for the poster to Maria before then."
    seed = next(seed for seed in range(100) if build_items("fix", [paragraph], seed)[0].shown != paragraph)
    directory = tmp_path / "ckpt"
    shutil.copytree(checkpoint(spec_with(TinySpec(), canvas_length=32)), directory)
    config = json.loads((directory / "config.json").read_text())
    config["redraft"] = {"tasks": ["fix", "shorten"], "canvas_init": "passage"}
    (directory / "config.json").write_text(json.dumps(config))
    load_model = engine.weights.checkpoint.load_model

    def load_copying(*args, **kwargs):
        loaded = load_model(*args, **kwargs)
        tokenizer = loaded.tokenizer
        shown = build_items("fix", [paragraph], seed)[0].shown
        tokens = tokenizer.encode(paragraph + shown, add_special_tokens=False) + [end_of_turn_id(tokenizer), 0]
        copying.make_copying(loaded.model, tokens)
        return loaded

    monkeypatch.setattr(engine.weights.checkpoint, "load_model", load_copying)
    report = evaluate([str(directory)], [paragraph], seed=seed)["models"][str(directory)]
    (fix,), (shorten,) = report["outputs"]["fix"], report["outputs"]["shorten"]
    assert fix["text"] == fix["shown"] != paragraph and shorten["text"] == paragraph
    figures = report["metrics"]["fix"]
    assert figures["wer_output"] == figures["wer_input"] > 0
    assert figures["slips_removed"] == 0 and figures["words_broken"] == 0
    assert report["metrics"]["shorten"]["length_ratio"] == report["metrics"]["shorten"]["content_kept"] == 1.0
