"""The README's configuration table is the one the code generates."""

import re
from pathlib import Path

from server.cli import config_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_matches_the_code():
    text = README.read_text()
    match = re.search(r"<!-- config-reference:start -->\n(.*?)<!-- config-reference:end -->", text, re.S)
    assert match, "the README lost its configuration markers"
    assert match.group(1).strip() == config_reference().strip(), "run: redraft config-reference"
