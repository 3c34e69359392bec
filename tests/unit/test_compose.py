"""docker-compose.yml, as Docker Compose itself reads it, checked against the code and the repository.

No engine needed: `docker compose config` only parses, interpolates and validates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from faust.cli.faust import cli

import caves_faust
from caves_faust import dashboard
from caves_faust.devstack import snowflake
from caves_faust.settings import env_names, load_settings
from tests.tools import require_command

REPO = Path(__file__).resolve().parents[2]
# What the compose file may set for our containers besides caves_faust's settings: Faust's own.
FAUST_VARIABLES = {"F_DATADIR"}
OUR_SERVICES = ("worker", "generator", "snowflake", "dashboard")
DEFAULTS = load_settings(environ={})


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`docker compose config --format json` of docker-compose.yml alone, with only `env` set: no shell variable,
    local .env or docker-compose.override.yml leaks in."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    base = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
    return subprocess.run(
        ["docker", "compose", "--file", str(REPO / "docker-compose.yml"), "--env-file", str(empty_env_file),
         "config", "--format", "json"],
        env={**base, **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_command("docker", "the docker client with its compose plugin; .ci/run builds the plugin",
                    probe=["compose", "version"])
    result = compose_config(
        tmp_path_factory.mktemp("compose"), GRAFANA_ADMIN_PASSWORD="test", COMPOSE_PROFILES="embedded-snowflake"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def environment(service: dict) -> dict:
    return service.get("environment") or {}


def test_the_whole_system_is_there(services):
    assert set(services) == {
        "redpanda", "topics", "console", "worker", "generator", "prometheus", "alertmanager", "grafana", "snowflake",
        "dashboard", "mailcatcher",
    }


def test_every_variable_set_for_our_containers_is_a_real_setting(services):
    known = set(env_names()) | FAUST_VARIABLES
    for name in OUR_SERVICES:
        assert set(environment(services[name])) <= known, name


def test_no_credential_lives_in_the_compose_file(services):
    # With nothing in the environment, every Snowflake setting but the embedded host is left unset.
    for name in ("worker", "dashboard"):
        env = environment(services[name])
        assert {k: v for k, v in env.items() if k.startswith("SNOWFLAKE_") and v is not None} == {
            "SNOWFLAKE_HOST": "snowflake"
        }
        assert "SNOWFLAKE_ACCOUNT" in env and "SNOWFLAKE_PASSWORD" in env  # passed on when set


def test_the_dashboard_reads_snowflake_as_the_worker_does_and_reaches_it(services):
    worker, dashboard = environment(services["worker"]), environment(services["dashboard"])
    assert {k: v for k, v in dashboard.items() if k.startswith("SNOWFLAKE_")} == {
        k: v for k, v in worker.items() if k.startswith("SNOWFLAKE_")
    }
    assert dashboard["WORKER_WEB_HOST"] == worker["WORKER_WEB_HOST"] == "worker"
    assert "WORKER_WEB_PORT" not in dashboard and "WORKER_WEB_PORT" not in worker


def test_grafana_refuses_to_start_without_an_admin_password(services, tmp_path):
    result = compose_config(tmp_path, COMPOSE_PROFILES="embedded-snowflake")

    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test"


def test_topics_created_are_the_ones_worker_and_generator_use(services):
    created = environment(services["topics"])
    worker, generator = environment(services["worker"]), environment(services["generator"])

    assert created["SALES_TOPIC"] == worker["KAFKA_TOPIC_NAME"] == generator["KAFKA_TOPIC_NAME"] == DEFAULTS.sales_topic
    assert created["DLQ_TOPIC"] == worker["DLQ_TOPIC_NAME"] == DEFAULTS.dlq_topic
    assert created["PARTITIONS"] == worker["KAFKA_TOPIC_PARTITIONS"] == str(DEFAULTS.topic_partitions)
    assert created["RPK_BROKERS"] == "redpanda:9092"
    assert worker["KAFKA_BROKER"] == generator["KAFKA_BROKER"] == "kafka://redpanda:9092"
    advertised = "--advertise-kafka-addr=internal://redpanda:9092,external://localhost:19092"
    assert advertised in services["redpanda"]["command"]


def test_ports_match_the_code(services):
    worker = services["worker"]
    assert "WORKER_WEB_PORT" not in environment(worker)  # so the worker listens on its default...
    assert [p["target"] for p in worker["ports"]] == [DEFAULTS.web_port]  # ...which is what is published
    assert f":{DEFAULTS.web_port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert environment(worker)["WORKER_WEB_HOST"] == "worker"  # its name for the other containers

    command = services["snowflake"]["command"]
    args = snowflake.argument_parser().parse_args(command[3:])
    assert (args.host, args.port) == ("0.0.0.0", DEFAULTS.snowflake_port)
    assert [p["target"] for p in services["snowflake"]["ports"]] == [DEFAULTS.snowflake_port]
    assert "SNOWFLAKE_PORT" not in environment(worker)

    dashboard = services["dashboard"]
    assert "DASHBOARD_PORT" not in environment(dashboard)
    assert environment(dashboard)["DASHBOARD_BIND"] == "0.0.0.0"  # opened on purpose: inside its container
    assert [p["target"] for p in dashboard["ports"]] == [DEFAULTS.dashboard_port]
    assert f":{DEFAULTS.dashboard_port}/_stcore/health" in " ".join(dashboard["healthcheck"]["test"])


def test_commands_are_real_cli_commands(services):
    assert caves_faust.app  # registers the app's commands, `generate` among them, on the faust CLI
    for name, subcommand in (("worker", "worker"), ("generator", "generate")):
        command = services[name]["command"]
        assert command[:4] == ["faust", "-A", "caves_faust", subcommand]
        cli.commands[subcommand].make_context(subcommand, command[4:])  # raises on an unknown option
    assert services["snowflake"]["command"][:3] == ["python", "-m", snowflake.__name__]
    assert services["dashboard"]["command"] == ["python", "-m", dashboard.__name__]
    assert (Path(dashboard.__file__).parent / "__main__.py").is_file()


def test_mounted_paths_exist_in_the_repo(services):
    binds = {
        mount["target"]: Path(mount["source"])
        for service in services.values() for mount in service.get("volumes", []) if mount["type"] == "bind"
    }
    assert binds == {
        "/etc/prometheus": REPO / "prometheus",
        "/etc/alertmanager": REPO / "alertmanager",
        "/etc/grafana/provisioning": REPO / "grafana" / "provisioning",
        "/var/lib/grafana/dashboards": REPO / "grafana" / "dashboards",
    }
    assert all(path.is_dir() for path in binds.values())


def test_our_services_are_built_from_the_dockerfile(services):
    for name in OUR_SERVICES:
        build = services[name]["build"]
        assert (Path(build["context"]) / build["dockerfile"]) == REPO / "docker" / "Dockerfile"
    assert (REPO / "docker" / "Dockerfile").is_file() and (REPO / ".dockerignore").is_file()


def test_services_start_in_order(services):
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency} to be healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["generator"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["snowflake"] == {"condition": "service_healthy", "required": False}
    assert services["snowflake"]["profiles"] == ["embedded-snowflake"]


def test_prometheus_sends_its_alerts_to_the_alertmanager_service(services):
    targets = re.findall(r'^\s*- targets: \["(alertmanager:\d+)"\]', (REPO / "prometheus/prometheus.yml").read_text(),
                         re.MULTILINE)
    published = [port["target"] for port in services["alertmanager"]["ports"]]
    assert targets == [f"alertmanager:{port}" for port in published] and published
    config = "--config.file=/etc/alertmanager/alertmanager.yml"
    assert config in services["alertmanager"]["command"] and (REPO / "alertmanager/alertmanager.yml").is_file()


def test_the_worker_mails_the_mail_catcher_and_no_smtp_password_lives_in_the_compose_file(services):
    worker = environment(services["worker"])
    assert (worker["SMTP_HOST"], worker["SMTP_PORT"]) == ("mailcatcher", "1025")
    assert worker["ALERT_EMAIL_TO"] and worker["ALERT_EMAIL_FROM"]
    assert "SMTP_PASSWORD" in worker and worker["SMTP_PASSWORD"] is None  # passed on when set
    assert any(str(port.get("published")) == "8025" for port in services["mailcatcher"]["ports"])
