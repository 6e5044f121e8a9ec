"""The model's fixtures (tests/support/torch_session.py); none of this suite runs without torch."""

from tests.support.torch_session import *  # noqa: F403
