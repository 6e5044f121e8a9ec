"""`redraft generate` (redraft.generate): both backends, JSON output, REDRAFT_* defaults, and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from redraft.generate import main
from tests.engine.tiny import TinySpec
from tests.support.processes import ROOT

WIDE = TinySpec(num_layers=6, num_experts=16, top_k=4, vocab_size=400, sliding_window=16, canvas_length=24, seed=3)


def run_json(capsys, *argv: str) -> dict:
    # the CPU in float32 whatever the machine has: the defaults would pick CUDA and bfloat16 where there is one
    defaults = [] if "--dtype" in argv else ["--dtype", "float32"]
    assert main([*argv, *defaults, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "spec, flags",
    [
        (TinySpec(), ["--prompt", "Tighten this sentence, please.", "--chat", "--max-new-tokens", "20", "--seed", "3"]),
        (WIDE, ["--prompt-ids", "2,9,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57", "--steps", "6",
                "--max-new-tokens", "48", "--seed", "11"]),
    ],
    ids=["chat-prompt", "prompt-ids"],
)
def test_native_and_reference_backends_agree_with_reference_rng(checkpoint, capsys, spec, flags):
    model = ["--model", str(checkpoint(spec))]
    native = run_json(capsys, *model, *flags, "--rng", "reference")
    reference = run_json(capsys, *model, *flags, "--backend", "reference")
    assert native["token_ids"] == reference["token_ids"]
    assert native["steps"] == reference["steps"]
    assert native["text"] == reference["text"]
    assert len(native["token_ids"]) == len(native["steps"]) * spec.canvas_length
    assert (native["backend"], reference["backend"], native["rng"]) == ("native", "reference", "reference")
    assert native["elapsed_s"] > 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tiny_preset_runs_on_both_backends_with_the_same_weights(capsys, dtype):
    flags = ["--model", "tiny", "--prompt", "Hello", "--max-new-tokens", "32", "--steps", "4", "--dtype", dtype]
    native = run_json(capsys, *flags, "--rng", "reference")
    reference = run_json(capsys, *flags, "--backend", "reference")
    assert native["token_ids"] == reference["token_ids"]
    assert native["steps"] == reference["steps"] == [4]
    assert native["prompt_tokens"] == 6  # <bos> + 5 bytes
    assert native["dtype"] == dtype


def test_flags_default_from_the_environment(checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("REDRAFT_MODEL", str(checkpoint(TinySpec())))
    monkeypatch.setenv("REDRAFT_PROMPT_IDS", "2,30,31,32")
    monkeypatch.setenv("REDRAFT_STEPS", "3")
    monkeypatch.setenv("REDRAFT_JSON", "1")
    monkeypatch.setenv("REDRAFT_DEVICE", "cpu")
    assert main([]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == [3, 3] and report["prompt_tokens"] == 4  # 32 new tokens from generation_config


def test_without_a_model_the_shipped_one_writes(capsys):
    report = run_json(capsys, "--prompt", "The meeting", "--steps", "4", "--seed", "1")
    assert report["model"] == "redraft-small" and report["steps"][0] <= 4 and report["text"].strip()


def test_plain_output_is_the_text(capsys):
    assert main(["--model", "tiny", "--prompt-ids", "2,70,71", "--max-new-tokens", "8", "--steps", "2",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "steps per canvas [2]" in captured.err
    assert captured.out.endswith("\n")


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--model", "tiny"], {}, "give exactly one of --prompt and --prompt-ids"),
        (["--model", "tiny", "--prompt", "a", "--prompt-ids", "1"], {}, "give exactly one of"),
        (["--model", "tiny", "--prompt-ids", "1,x"], {}, "--prompt-ids must be comma-separated integers"),
        (["--model", "tiny", "--prompt-ids", "1", "--chat"], {}, "--chat applies to --prompt only"),
        (["--model", "tiny", "--prompt-ids", "1", "--steps", "0"], {}, "--steps must be a positive integer"),
        (["--model", "tiny", "--prompt-ids", "1"], {"REDRAFT_BACKEND": "onnx"}, "--backend must be one of native"),
        (["--model", "tiny", "--prompt-ids", "1", "--rng", "fast"], {}, "--rng must be one of native, reference"),
        (["--model", "tiny", "--prompt-ids", "1", "--max-new-tokens", "4096"], {}, "exceeds the model's context"),
    ],
)
def test_usage_errors_exit_2_with_a_message(capsys, monkeypatch, argv, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_missing_checkpoint_exits_1_naming_it(capsys, tmp_path):
    assert main(["--model", str(tmp_path / "gone"), "--prompt-ids", "1"]) == 1
    assert f"{tmp_path / 'gone'}: not a checkpoint directory" in capsys.readouterr().err




def test_python_dash_m_entry_point():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "redraft.generate", "--model", "tiny", "--prompt-ids", "2,5", "--max-new-tokens", "4",
         "--steps", "2", "--json", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == [2]


@pytest.mark.parametrize("module", ["redraft", "server"])
def test_python_dash_m_runs_the_redraft_command(module):
    done = subprocess.run([sys.executable, "-m", module, "generate", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: redraft generate")
