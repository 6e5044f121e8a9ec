"""Configuration: validation messages, and flags over REDRAFT_* over defaults."""

import pytest

from redraft.cli import build_parser, config_from_args
from server.config import ServerConfig, is_valid_doc_name


def parse(argv, monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_are_embedded_and_loopback(monkeypatch):
    config = parse([], monkeypatch)
    assert (config.host, config.port, config.redis_url, config.engine) == ("127.0.0.1", 8000, None, "off")


def test_environment_and_flags(monkeypatch):
    config = parse(["--port", "9001"], monkeypatch, REDRAFT_PORT="9000", REDRAFT_MAX_DOC_BYTES="4096",
                   REDRAFT_ALLOWED_ORIGINS="https://a.example, https://b.example")
    assert config.port == 9001
    assert config.max_doc_bytes == 4096
    assert config.allowed_origins == ("https://a.example", "https://b.example")


def test_the_contracts_serve_quantize_flag_is_the_engine_quantize_setting(monkeypatch):
    # ARCHITECTURE.md: `redraft serve ... [--model PRESET_OR_PATH] [--quantize none|fp8|nf4]`
    assert parse(["--quantize", "nf4"], monkeypatch).engine_quantize == "nf4"
    assert parse(["--engine-quantize", "fp8"], monkeypatch).engine_quantize == "fp8"
    # every flag reads REDRAFT_<FLAG>: the alias's variable too, after the setting's own
    assert parse([], monkeypatch, REDRAFT_QUANTIZE="nf4").engine_quantize == "nf4"
    assert parse([], monkeypatch, REDRAFT_QUANTIZE="nf4", REDRAFT_ENGINE_QUANTIZE="fp8").engine_quantize == "fp8"
    with pytest.raises(SystemExit):  # argparse's own error, naming the choices
        parse(["--quantize", "int3"], monkeypatch)


def test_bad_values_name_the_flag(monkeypatch):
    with pytest.raises(ValueError, match="--max-doc-bytes: cannot read 'lots'"):
        parse(["--max-doc-bytes", "lots"], monkeypatch)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "gpu"}, "engine must be one of local, redis, openai, off"),
        ({"host": "0.0.0.0"}, "not a loopback address"),
        ({"secret": "short"}, "at least 16 characters"),
        ({"port": 0}, "port must be 1..65535"),
        ({"max_send_queue": 0}, "max_send_queue must be at least 1"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServerConfig(**kwargs)


def test_public_host_needs_a_secret():
    assert ServerConfig(host="0.0.0.0", secret="x" * 16).host == "0.0.0.0"


@pytest.mark.parametrize("name, valid", [("a", True), ("My-doc_1.md", True), ("x" * 128, True),
                                         ("", False), ("x" * 129, False), ("a/b", False), ("é", False)])
def test_doc_names(name, valid):
    assert is_valid_doc_name(name) is valid
