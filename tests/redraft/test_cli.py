"""The `redraft` command on a collaboration-only install: every command parses; one that needs the engine says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# torch (and the other heavy packages) made unimportable, as on `pip install redraft` without the engine extra
WITHOUT_ENGINE = "import sys; [sys.modules.__setitem__(name, None) for name in ('torch', 'transformers')]; "


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_ENGINE + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_without_the_engine_every_command_parses_and_generate_says_what_is_missing():
    done = run("from redraft.cli import build_parser, main; build_parser(); "
               "sys.exit(main(['generate', '--model', 'tiny', '--prompt-ids', '2,5']))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "redraft generate: the engine is not installed (pip install 'redraft[engine]')"


def test_without_the_engine_a_bad_worker_flag_is_still_named():
    done = run("from redraft.cli import main; sys.exit(main(['worker', '--redis-url', 'redis://x', "
               "'--max-batch', 'many']))")
    assert done.returncode == 2, done.stderr
    assert "--max-batch: cannot read 'many'" in done.stderr
