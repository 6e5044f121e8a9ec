"""The model's fixtures (tests/support/torch_session.py) for the commands that run it."""

from tests.support.torch_session import *  # noqa: F403

if "collect_ignore_glob" in globals():  # no torch: the command line itself (test_cli.py) is still tested
    collect_ignore_glob = ["test_generate.py", "test_train.py"]
