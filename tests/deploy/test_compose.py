"""docker-compose.yml: valid for Debian's docker-compose, and holding what a self-hosted install needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from redraft.cli import serve_flags, worker_flags
from tests.deploy import compose
from tests.deploy.compose import ROOT, SERVICES, flag_value

SECRET = "compose-test-secret-0123456789"
REDIS_URL = "redis://redis:6379/0"


def _docker_compose(env_file, tmp_path) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDRAFT_")}
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(compose.COMPOSE_FILE), "config", "-q"],
                          cwd=tmp_path, env=env, check=False, capture_output=True, text=True, timeout=60)


def test_docker_compose_accepts_the_file_with_the_example_env_and_a_secret(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(compose.ENV_EXAMPLE.read_text().replace("REDRAFT_SECRET=\n", f"REDRAFT_SECRET={SECRET}\n"))
    result = _docker_compose(env_file, tmp_path)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_a_secret(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(compose.ENV_EXAMPLE.read_text())  # REDRAFT_SECRET= left empty, as shipped
    result = _docker_compose(env_file, tmp_path)
    assert result.returncode != 0
    assert "set REDRAFT_SECRET in .env" in result.stderr


def test_every_variable_is_documented_in_the_env_example_and_no_secret_is_written_down():
    assert compose.referenced_variables() == set(compose.env_example())
    assert compose.env_example()["REDRAFT_SECRET"] == ""
    with pytest.raises(ValueError, match="REDRAFT_SECRET"):
        compose.resolved()
    for name, service in compose.raw()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|TOKEN|KEY", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key} must come from .env"


def test_services_health_checks_restart_policies_and_pinned_images():
    services = compose.resolved(REDRAFT_SECRET=SECRET)["services"]
    assert sorted(services) == sorted(SERVICES)
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service["restart"] in ("always", "unless-stopped"), name
        if "image" in service:  # a tag for people, a digest for the machine
            assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", service["image"]), name
            assert ":latest" not in service["image"], name
        else:
            assert service["build"]["dockerfile"].startswith("docker/"), name
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name


def test_redis_persists_to_a_named_volume_with_aof_and_is_not_published():
    spec = compose.resolved(REDRAFT_SECRET=SECRET)
    redis = spec["services"]["redis"]
    assert flag_value(redis["command"], "--appendonly") == "yes"
    data_dir = flag_value(redis["command"], "--dir")
    volume = next(v.split(":")[0] for v in redis["volumes"] if v.split(":")[1] == data_dir)
    assert volume in spec["volumes"]  # named, so it outlives `docker compose down`
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_only_the_proxy_publishes_a_port_and_servers_can_be_scaled():
    services = compose.resolved(REDRAFT_SECRET=SECRET)["services"]
    assert {name for name, service in services.items() if "ports" in service} == {"proxy"}
    assert compose.raw()["services"]["proxy"]["ports"] == ["${REDRAFT_PORT:-8000}:80"]
    assert not any("container_name" in service for service in services.values())  # would forbid --scale
    server = services["server"]
    assert server["command"][:2] == ["redraft", "serve"]
    assert flag_value(server["command"], "--engine") == "redis"
    assert flag_value(server["command"], "--redis-url") == REDIS_URL
    port = flag_value(server["command"], "--port")
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(server["healthcheck"]["test"])


def test_the_proxy_passes_websockets_to_every_server_replica():
    proxy = compose.resolved(REDRAFT_SECRET=SECRET)["services"]["proxy"]
    source, target, mode = proxy["volumes"][0].split(":")
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")
    conf = (ROOT / source).read_text()
    server_port = flag_value(compose.resolved(REDRAFT_SECRET=SECRET)["services"]["server"]["command"], "--port")
    assert re.search(rf"server server:{server_port} resolve;", conf)  # follows --scale, not one address
    for directive in ("proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
                      "proxy_set_header Host $http_host;", "proxy_http_version 1.1;", "proxy_read_timeout 1h;",
                      "proxy_set_header X-Forwarded-For $remote_addr;"):  # not appended to: a client could forge it
        assert directive in conf
    assert "listen 80;" in conf and "location = /proxy-health" in conf
    assert proxy["healthcheck"]["test"][-1] == "http://127.0.0.1/proxy-health"


def test_the_engine_gets_a_gpu_a_read_only_model_folder_and_its_quantization_from_the_env():
    engine = compose.resolved(REDRAFT_SECRET=SECRET)["services"]["engine"]
    assert engine["command"][:2] == ["redraft", "worker"]
    assert flag_value(engine["command"], "--redis-url") == REDIS_URL
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    source, target, mode = engine["volumes"][0].split(":")
    assert (source, target, mode) == ("./models", "/models", "ro")
    assert engine["environment"]["REDRAFT_MODEL"].startswith(target + "/")
    assert compose.raw()["services"]["engine"]["environment"]["REDRAFT_QUANTIZE"] == "${REDRAFT_QUANTIZE:-none}"
    assert engine["healthcheck"]["test"] == ["CMD", "redraft", "worker-health", "--redis-url", REDIS_URL]


def test_every_redraft_variable_given_to_a_service_is_one_its_command_reads():
    services = compose.resolved(REDRAFT_SECRET=SECRET)["services"]
    for name, flags in (("server", serve_flags()), ("engine", worker_flags())):
        read = {env for _, env, _, _ in flags}
        given = {key for key in services[name]["environment"] if key.startswith("REDRAFT_")}
        assert given <= read, f"{name}: nothing reads {given - read}"
