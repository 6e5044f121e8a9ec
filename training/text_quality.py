"""How good a model's redrafts are as text, on paragraphs its training never saw: the figures that say whether
a retrained redraft-small is better than the last one, models side by side.

Every redraft goes through the engine's own path, as the editor's do: a spec dict with its task ->
RedraftSpec -> the engine's request (engine.api.Engine.redraft: prompt, canvases, a passage-started canvas for
a model that declares one) -> the scheduler -> the outcome's text. Per task (the ones each model declares among
EVALUATED; a model without a declaration: UNDECLARED):
- all: the share of generated words that are dictionary words or numbers (training/text_metrics.py), U+FFFD and
  stray markup counts, empty outputs, seconds per paragraph (wall, median);
- rewrite, shorten, fix: the share of the clean paragraph's content words kept (a slip a fix corrects counts
  as kept), and output words over its words;
- fix (shown the paragraph with slips from training.corruption.misspell_words at FIX_RATE): word error rate of
  the input and of the output against the clean paragraph, the share of slips removed, and the share of the
  words shown right that the output breaks;
- fill (one sentence taken out, the model asked for it) and continue (shown the first half of the words).

Inputs and seeds are a function of each paragraph's text and --seed alone, so a run with --limit or another
file order gives the same figure for a paragraph. `python -m training.text_quality --models redraft-small,DIR`
prints a markdown table; --json writes it all, every output included (timings apart, under "timings": the
rest is the same for two runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RequestError
from jobs.tasks import EVERY_TASK, TASKS, ModelTasks, instruction_for
from training.corpus import read_paragraph_file, sentences
from training.corruption import misspell_words
from training.text_metrics import (
    content_kept,
    dictionary_words,
    fix_counts,
    load_dictionary,
    markup_count,
    replacement_count,
)

EVALUATED = ("rewrite", "shorten", "fix", "fill", "continue")
UNDECLARED = ("rewrite", "fill", "continue")  # what a model that declares nothing was trained for
PASSAGE_TASKS = ("rewrite", "shorten", "fix")  # the output is the passage again, redrafted
FIX_RATE = 0.08
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "training" / "fixtures"
HELD_OUT = FIXTURES / "english_docs_held_out.txt"  # redraft train --corpus english-docs --export-held-out
EVERYDAY = FIXTURES / "everyday.txt"


@dataclass(frozen=True)
class Item:
    """One redraft to ask for, and what its output is measured against."""

    task: str
    paragraph: int  # index into the evaluated paragraphs
    spec: dict  # jobs.spec.RedraftSpec fields
    shown: str  # the passage (rewrite family), the text before "|" the text after (fill), the start (continue)
    reference: str  # the clean paragraph (rewrite family), the removed sentence (fill), the rest (continue)


def default_paragraph_files() -> list[Path]:
    return [path for path in (HELD_OUT, EVERYDAY) if path.is_file()]


def read_paragraphs(files: list[Path], limit: int | None = None) -> list[str]:
    """The paragraphs of each file in turn, at most `limit` from each (so that every kind of text is in a
    short run)."""
    paragraphs: list[str] = []
    for path in files:
        paragraphs += read_paragraph_file(path)[:limit]
    return paragraphs


def evaluated_tasks(tasks: ModelTasks, wanted: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The tasks to evaluate a model on. By default its declared ones, or UNDECLARED for a model that declares
    none (read_tasks returns EVERY_TASK itself then; a declaration naming every task is a new ModelTasks, and
    means it). `wanted` (--tasks) asks for those the model accepts: any of them for a model without a
    declaration, so an old model can be the baseline of a new one's tasks."""
    if wanted is None:
        return UNDECLARED if tasks is EVERY_TASK else tuple(task for task in EVALUATED if task in tasks.tasks)
    return tuple(task for task in EVALUATED if task in wanted and task in tasks.tasks)


def item_seed(seed: int, task: str, paragraph: str) -> int:
    """A seed of the paragraph's text, not of its place in the run."""
    return zlib.crc32(f"{seed} {task} {paragraph}".encode())


def build_items(task: str, paragraphs: list[str], seed: int = 0) -> list[Item]:
    """The redrafts of one task, one per paragraph that allows it (a fill needs a paragraph of two sentences
    or more, a continue one of two words or more)."""
    items = []
    for index, paragraph in enumerate(paragraphs):
        made = _item(task, index, paragraph, item_seed(seed, task, paragraph))
        if made is not None:
            items.append(made)
    return items


def _item(task: str, index: int, paragraph: str, seed: int) -> Item | None:
    kind = TASKS[task][0]
    # The instruction is the task's own (what instruction_for gives the engine from the task): an engine that
    # reads `task` ignores it, one that does not yet still gets the prompt the editor would send.
    instruction = instruction_for(task, "")
    spec = {"id": f"{task}-{index}", "kind": kind, "task": task, "instruction": instruction, "seed": seed}
    rng = random.Random(seed)
    if task in PASSAGE_TASKS:
        shown = " ".join(misspell_words(paragraph.split(), rng, FIX_RATE)) if task == "fix" else paragraph
        return Item(task, index, {**spec, "passage": shown}, shown, paragraph)
    if task == "fill":
        parts = sentences(paragraph)
        if len(parts) < 2:
            return None
        j = rng.randrange(len(parts))
        before, after = " ".join(parts[:j]), " ".join(parts[j + 1 :])
        # The spaces stay with the text around the cursor, as in a document: the model writes the sentence.
        before, after = before + (" " if before else ""), (" " if after else "") + after
        return Item(task, index, {**spec, "before": before, "after": after}, before + "|" + after, parts[j])
    if task == "continue":
        words = paragraph.split()
        if len(words) < 2:
            return None
        half = len(words) // 2
        before = " ".join(words[:half])
        return Item(task, index, {**spec, "before": before}, before, " ".join(words[half:]))
    raise ValueError(f"no evaluation for the task {task!r}")


def measure(items: list[Item], outputs: list[dict], dictionary: frozenset[str]) -> dict:
    """The task's figures, each pooled over its paragraphs (counts summed, then divided); None where nothing
    was counted. outputs[i] is item i's outcome: {"text": ...} or {"error": ...} (refused)."""
    answered = [(item, out["text"]) for item, out in zip(items, outputs, strict=True) if "error" not in out]
    texts = [text for _, text in answered]
    known = [dictionary_words(text, dictionary) for text in texts]
    figures = {
        "paragraphs": len(items),
        "refused": len(items) - len(answered),
        "dictionary_words": _share(known),
        "words_out": statistics.fmean(len(text.split()) for text in texts) if texts else None,
        "empty": sum(not text.strip() for text in texts),
        # the output ran to the end of its canvases without the model ending it: its last words may be cut
        "cut": sum(not out.get("complete", True) for out in outputs if "error" not in out),
        "replacement_chars": sum(map(replacement_count, texts)),
        "markup": sum(map(markup_count, texts)),
    }
    if items and items[0].task in PASSAGE_TASKS:
        figures["content_kept"] = _share([content_kept(item.reference, text) for item, text in answered])
        lengths = [(len(text.split()), len(item.reference.split())) for item, text in answered]
        figures["length_ratio"] = _share(lengths)
    if items and items[0].task == "fix":
        counts = [fix_counts(item.reference, item.shown, text) for item, text in answered]
        figures["wer_input"] = _share([(c.input_errors, c.clean_words) for c in counts])
        figures["wer_output"] = _share([(c.output_errors, c.clean_words) for c in counts])
        figures["slips_removed"] = _share([(c.removed, c.injected) for c in counts])
        figures["words_broken"] = _share([(c.broken, c.intact) for c in counts])
    return figures


def _share(pairs: list[tuple[int, int]]) -> float | None:
    total = sum(whole for _, whole in pairs)
    return sum(part for part, _ in pairs) / total if total else None


async def evaluate_model(name: str, items: dict[str, list[Item]], tasks: tuple[str, ...] | None, steps: int | None,
                         dictionary: frozenset[str]) -> tuple[dict, dict]:
    """(the model's report, its timings): loads it on the CPU, asks for each item's redraft in turn (one at a
    time: the wall time is the redraft's alone), and measures the outputs."""
    from engine.api import Engine, EngineConfig

    engine = await Engine.load(EngineConfig(model=name, device="cpu", max_batch=1))
    try:
        declared = engine.loaded.tasks
        chosen = evaluated_tasks(declared, tasks)
        report = {"source": engine.loaded.source, "tasks": list(chosen), "canvas_init": declared.canvas_init,
                  "metrics": {}, "outputs": {}}
        timings = {}
        for task in chosen:
            outputs, seconds = [], []
            for item in items[task]:
                spec = item.spec if steps is None else {**item.spec, "steps": steps}
                started = time.perf_counter()
                try:
                    outcome = await engine.redraft(spec).result()
                except RequestError as error:
                    outputs.append({"error": str(error)})
                    continue
                seconds.append(time.perf_counter() - started)
                outputs.append({"text": outcome["text"], "complete": outcome["complete"]})
            report["metrics"][task] = measure(items[task], outputs, dictionary)
            report["outputs"][task] = [
                {"paragraph": item.paragraph, "shown": item.shown, "reference": item.reference, **output}
                for item, output in zip(items[task], outputs, strict=True)
            ]
            timings[task] = {"p50_seconds": statistics.median(seconds) if seconds else None, "seconds": seconds}
        return report, timings
    finally:
        await engine.close()


def evaluate(models: list[str], paragraphs: list[str], seed: int = 0, tasks: tuple[str, ...] | None = None,
             steps: int | None = None, dictionary: frozenset[str] | None = None) -> dict:
    """Every model on the same items. tasks: these instead of each model's declared ones (evaluated_tasks)."""
    dictionary = load_dictionary() if dictionary is None else dictionary
    wanted = EVALUATED if tasks is None else tasks
    items = {task: build_items(task, paragraphs, seed) for task in wanted}
    # what a model that wrote these paragraphs back would score: the ceiling of "dictionary words" on them
    ceiling = _share([dictionary_words(paragraph, dictionary) for paragraph in paragraphs])
    settings = {"paragraphs": len(paragraphs), "seed": seed, "steps": steps, "fix_rate": FIX_RATE,
                "paragraph_dictionary_words": ceiling}
    result = {"settings": settings, "models": {}, "timings": {}}
    for name in models:
        result["models"][name], result["timings"][name] = asyncio.run(
            evaluate_model(name, items, tasks, steps, dictionary)
        )
    return result


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _number(value, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# (label, figure, format, the tasks that have it)
ROWS = (
    ("dictionary words", "dictionary_words", _percent, EVALUATED),
    ("content words kept", "content_kept", _percent, PASSAGE_TASKS),
    ("words out / words in", "length_ratio", lambda v: _number(v, 2), PASSAGE_TASKS),
    ("word error rate, input", "wer_input", _percent, ("fix",)),
    ("word error rate, output", "wer_output", _percent, ("fix",)),
    ("slips removed", "slips_removed", _percent, ("fix",)),
    ("correct words broken", "words_broken", _percent, ("fix",)),
    ("words per output", "words_out", lambda v: _number(v, 1), EVALUATED),
    ("empty outputs", "empty", _number, EVALUATED),
    ("cut at the output budget", "cut", _number, EVALUATED),
    ("refused", "refused", _number, EVALUATED),
    ("U+FFFD", "replacement_chars", _number, EVALUATED),
    ("stray markup", "markup", _number, EVALUATED),
)


def format_table(result: dict) -> str:
    """Markdown: one row per task and figure, one column per model; "—" where a model does not do the task."""
    names = list(result["models"])
    settings = result["settings"]
    lines = [
        f"{settings['paragraphs']} paragraphs, seed {settings['seed']}, "
        f"steps {settings['steps'] or 'the checkpoint’s'}, fix slips at {settings['fix_rate']:.0%} of words; "
        f"dictionary words in the paragraphs themselves: {_percent(settings.get('paragraph_dictionary_words'))}",
        "",
        "| task: figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for task in EVALUATED:
        if not any(task in report["tasks"] for report in result["models"].values()):
            continue
        reports = [result["models"][name] for name in names]
        for label, key, fmt, tasks in ROWS:
            if task in tasks:
                cells = [fmt(report["metrics"][task][key]) if task in report["tasks"] else "—" for report in reports]
                lines.append(f"| {task}: {label} | " + " | ".join(cells) + " |")
        cells = [_number(result["timings"][name].get(task, {}).get("p50_seconds"), 2) for name in names]
        lines.append(f"| {task}: seconds per paragraph, p50 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_samples(result: dict, count: int) -> str:
    """The first `count` outputs of each model and task, beside what the model was shown, to read."""
    lines = []
    for name, report in result["models"].items():
        for task in report["tasks"]:
            lines += ["", f"{name}, {task}:"]
            for output in report["outputs"][task][:count]:
                lines.append(f"- shown:  {output['shown']}")
                lines.append(f"  output: {output.get('text', 'refused: ' + output.get('error', ''))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="redraft quality as text, models side by side (on the CPU)")
    parser.add_argument("--models", default="redraft-small",
                        help="comma-separated: shipped model names or checkpoint directories")
    parser.add_argument("--paragraphs", type=Path, nargs="+", default=None,
                        help="text files, paragraphs separated by blank lines (default: "
                             "tests/training/fixtures/english_docs_held_out.txt when present, and everyday.txt)")
    parser.add_argument("--limit", type=int, default=None, help="at most N paragraphs from each file")
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated, of {', '.join(EVALUATED)}: each model is asked for those it accepts, "
                             "one without a declaration for all (default: each model's declared ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps per canvas (default: the model's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--dictionary", type=Path, default=None,
                        help="the word list of the dictionary-word figures (default: wamerican's)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure and output here")
    parser.add_argument("--show", type=int, default=0, help="print the first N outputs of each task to read")
    options = parser.parse_args(argv)
    tasks = None if options.tasks is None else tuple(options.tasks.split(","))
    if tasks is not None and not set(tasks) <= set(EVALUATED):
        parser.error(f"--tasks takes {', '.join(EVALUATED)}")
    if options.limit is not None and options.limit < 1 or options.threads < 1:
        parser.error("--limit and --threads must be at least 1")
    files = options.paragraphs or default_paragraph_files()
    paragraphs = read_paragraphs(files, options.limit)
    if not paragraphs:
        parser.error("no paragraphs to evaluate")

    import torch

    torch.set_num_threads(options.threads)
    dictionary = None if options.dictionary is None else load_dictionary(options.dictionary)
    result = evaluate([name for name in options.models.split(",") if name], paragraphs, options.seed, tasks,
                      options.steps, dictionary)
    result["settings"].update(files=[str(path) for path in files], threads=options.threads)
    print(format_table(result))
    if options.show > 0:
        print(format_samples(result, options.show))
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
