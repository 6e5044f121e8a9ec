"""The shipped model, redraft-small: it loads by name through the normal checkpoint path, declares what it does,
edits a passage in place without breaking it (the README's figures), and writes the same text for the same
seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.api import EngineConfig
from engine.errors import RequestError
from engine.model.config import TRAINABLE_CONFIGS
from engine.runtime.generate import Request, generate
from engine.runtime.redrafts import RedraftSpec, build_request
from engine.runtime.reference import load_reference, reference_generate
from engine.text.prompts import encode_messages
from engine.text.tokenizer import CHAT_TEMPLATE, TURN_END_ID
from engine.weights.checkpoint import SHIPPED_MODELS, load_model
from redraft.generate import main as generate_main
from training.corpus import corpus_packages, read_paragraph_file
from training.text_quality import evaluate

HELD_OUT = Path(__file__).parent / "fixtures" / "english_docs_held_out.txt"
EVERYDAY = Path(__file__).parent / "fixtures" / "everyday.txt"
@pytest.fixture(scope="module")
def small():
    return load_model("redraft-small")


def test_loads_by_name_from_the_package(small):
    assert small.source == "redraft-small"
    assert small.args == TRAINABLE_CONFIGS["redraft-small"]
    assert small.generation.eos_token_ids == (1, TURN_END_ID)
    assert len(small.tokenizer) == small.args.vocab_size and small.tokenizer.chat_template == CHAT_TEMPLATE
    directory = SHIPPED_MODELS["redraft-small"]
    licences = (directory / "LICENSES.txt").read_text()
    assert all(package in licences for package in corpus_packages("english-docs"))
    assert (directory / "model.safetensors").stat().st_size < 20e6
    assert EngineConfig(model="redraft-small").model == "redraft-small"


def test_a_fix_removes_slips_and_keeps_the_paragraph():
    """The issue's goals for the fix task on held-out paragraphs, through the engine's own path: it removes at
    least half of the injected slips (87 % over all 42 paragraphs), changes under 2 % of the correct words
    (2 of 2,390 over the 42), halves the word error rate, and writes no markup and no U+FFFD."""
    paragraphs = read_paragraph_file(HELD_OUT)[:6] + read_paragraph_file(EVERYDAY)[:6]
    report = evaluate(["redraft-small"], paragraphs, seed=0, tasks=("fix",), steps=24)
    fix = report["models"]["redraft-small"]["metrics"]["fix"]
    assert fix["refused"] == fix["empty"] == fix["markup"] == fix["replacement_chars"] == 0, fix
    assert fix["slips_removed"] >= 0.5, fix
    assert fix["words_broken"] < 0.02, fix
    assert fix["wer_output"] < fix["wer_input"] / 2, fix


@pytest.mark.parametrize("shown, fixed", [
    ("Please send me teh report by Friday so that I can chekc the numbers before the meeting.",
     "Please send me the report by Friday so that I can check the numbers before the meeting."),
    ("The new release imporves startup time and fixes a crash when the the network drops.",
     "The new release improves startup time and fixes a crash when the network drops."),
    ("She had had enough of the rain, so Priya stayed inside and read a book.",
     "She had had enough of the rain, so Priya stayed inside and read a book."),
])
def test_a_fix_in_the_editor_corrects_typos_and_doubled_words_and_nothing_else(small, shown, fixed):
    spec = RedraftSpec.from_dict({"id": "r", "kind": "rewrite", "task": "fix", "passage": shown, "seed": 1})
    request = build_request(spec, small.tokenizer, small.args, small.args.max_context, small.tasks, small.lexicon)
    (result,) = generate(small.model, [request], small.generation)
    assert small.tokenizer.decode(result.token_ids, skip_special_tokens=True) == fixed


def test_declares_what_it_does(small):
    assert small.tasks.tasks == ("fix",)
    assert small.tasks.canvas_init == "passage" and "README" in small.tasks.note
    rewrite = RedraftSpec.from_dict({"id": "r", "kind": "rewrite", "passage": "Some text."})
    with pytest.raises(RequestError, match="does not do the rewrite task"):
        build_request(rewrite, small.tokenizer, small.args, small.args.max_context, small.tasks)


def test_same_seed_same_redraft(small):
    passage = "The the function returns a new list containg the items of the iterable in sorted order."
    spec = RedraftSpec.from_dict({"id": "r", "kind": "rewrite", "task": "fix", "passage": passage, "seed": 5,
                                  "before": "Sorting lists is common. "})
    request = build_request(spec, small.tokenizer, small.args, small.args.max_context, small.tasks)
    assert request.init_ids[:-1] == small.tokenizer.encode(passage, add_special_tokens=False)  # starts from it
    first, again = (generate(small.model, [request], small.generation)[0] for _ in range(2))
    assert first.token_ids == again.token_ids and first.steps == again.steps
    assert small.tokenizer.decode(first.token_ids, skip_special_tokens=True).strip()  # text, not only an end token


def test_generate_command_serves_it_by_name(capsys):
    argv = ["--model", "redraft-small", "--prompt", "Return the absolute value of", "--max-new-tokens", "32",
            "--seed", "2", "--device", "cpu", "--dtype", "bfloat16", "--json"]
    assert generate_main(argv) == 0
    first = capsys.readouterr().out
    assert generate_main(argv) == 0
    assert capsys.readouterr().out.split('"elapsed_s"')[0] == first.split('"elapsed_s"')[0]


def test_transformers_reads_the_same_model(small):
    """The Hugging Face layout of the real checkpoint: from_pretrained and its generate give the native ids."""
    reference = load_reference("redraft-small", "cpu", torch.float32)
    prompt = encode_messages(small.tokenizer, [{"role": "user", "content": "Return the absolute value"}])
    generation = small.generation.replace(max_new_tokens=32, max_denoising_steps=12)
    expected, steps = reference_generate(reference, prompt, generation, seed=4)
    (result,) = generate(small.model, [Request(prompt, seed=4)], generation, rng="reference")
    assert (result.token_ids, result.steps) == (expected, steps)


def test_bfloat16_keeps_the_stored_weights():
    bf16 = load_model("redraft-small", dtype=torch.bfloat16)
    fp32 = load_model("redraft-small")
    # stored in bf16: reading them as float32 and casting back loses nothing
    pairs = zip(fp32.model.parameters(), bf16.model.parameters(), strict=True)
    assert all(torch.equal(a.bfloat16(), b) for a, b in pairs)
