"""The README's configuration tables are the ones the code generates, and they list every flag."""

import re
from pathlib import Path

import pytest

from redraft.cli import build_parser, config_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_tables_match_the_code():
    text = README.read_text()
    match = re.search(r"<!-- config-reference:start -->\n(.*?)<!-- config-reference:end -->", text, re.DOTALL)
    assert match, "the README lost its configuration markers"
    assert match.group(1).strip() == config_reference().strip(), "run: redraft config-reference"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_reference_has_a_row_for_every_flag_the_command_takes(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    # every option string, aliases included ("--engine-quantize ENGINE_QUANTIZE, --quantize ENGINE_QUANTIZE")
    options = re.findall(r"(?:^\s+|, )(--[a-z-]+)", capsys.readouterr().out, re.MULTILINE)
    flags = set(options) - {"--help", "--log-level"}
    rows = [line for line in config_reference().splitlines() if line.startswith("| `--")]
    assert flags and {flag for flag in flags if not any(f"`{flag}`" in row.split(" | ")[0] for row in rows)} == set()
