"""docker-compose.yaml cannot run here (no Docker engine): check what can be checked without one."""

from __future__ import annotations

import json
import pathlib
import re
import tomllib

import yaml

from airflow_provider_echo360.hooks.transport import ConnectionSettings
from devtools.environment import BUCKET, DEFAULT_REPORTS, POOL

REPO = pathlib.Path(__file__).parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
CELERY_COMMAND = "AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up"


def airflow_env(service: str) -> dict[str, str]:
    return COMPOSE["services"][service]["environment"]


def interpolate(value: str, variables: dict[str, str]) -> str:
    """What Compose makes of ``${VAR:-default}`` with these shell variables."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: variables.get(m[1]) or m[2], value)


def test_services_are_all_there():
    services = COMPOSE["services"]
    assert {"postgres", "s3", "sandbox", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    assert services["airflow-worker"]["profiles"] == ["celery"] and services["redis"]["profiles"] == [
        "celery"
    ]
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in [*AIRFLOW_SERVICES, "airflow-worker"]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["volumes"] == ["./example_dags:/opt/airflow/dags:ro"]


def test_the_celery_profile_runs_every_component_on_the_celery_executor():
    services = COMPOSE["services"]
    header = (REPO / "docker-compose.yaml").read_text().split("\nx-airflow", 1)[0]
    assert CELERY_COMMAND in header
    assert CELERY_COMMAND in (REPO / "README.md").read_text()
    for variables, executor in (
        ({}, "LocalExecutor"),
        ({"AIRFLOW_EXECUTOR": "CeleryExecutor"}, "CeleryExecutor"),
    ):
        for name in ["airflow-init", *AIRFLOW_SERVICES]:
            assert interpolate(airflow_env(name)["AIRFLOW__CORE__EXECUTOR"], variables) == executor, name
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    # The worker runs the tasks: the image with the provider installed, like every other component.
    assert worker["image"] == services["airflow-scheduler"]["image"] and worker["build"] == "."
    assert worker["network_mode"] == "service:sandbox"  # reaches the sandbox on loopback
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    env = airflow_env("airflow-worker")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert (
        backend.startswith("db+")
        and backend.removeprefix("db+") == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )


def test_the_image_is_the_locked_airflow_version():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    airflow = next(p["version"] for p in lock["package"] if p["name"] == "apache-airflow")
    assert f"FROM apache/airflow:{airflow}-" in (REPO / "Dockerfile").read_text()


def test_init_creates_the_pool_and_the_bucket_as_the_demo_does():
    script = "\n".join(COMPOSE["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert re.search(rf"airflow pools set {POOL} 3 .* --include-deferred", script)
    assert f"create_bucket(Bucket='{BUCKET}')" in script


def test_every_connection_variable_and_setting_the_dags_need_is_set():
    for service in [*AIRFLOW_SERVICES, "airflow-worker"]:
        env = airflow_env(service)
        echo360 = json.loads(env["AIRFLOW_CONN_ECHO360_DEFAULT"])
        conn = type("Conn", (), {**echo360, "schema": None, "port": None, "extra_dejson": {}})
        assert (
            ConnectionSettings.from_connection(conn).base_url == "http://127.0.0.1:8081"
        )  # loopback: allowed
        assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == "http://s3:5000"
        assert json.loads(env["ECHO360_REPORTS"]) == list(DEFAULT_REPORTS)
        assert float(env["ECHO360_POLL_SECONDS"]) > 0
        assert env["AIRFLOW_VAR_ECHO360_S3_BUCKET"] == BUCKET
        assert COMPOSE["services"][service]["network_mode"] == "service:sandbox"


def test_the_sandbox_listens_where_the_connection_points():
    sandbox = COMPOSE["services"]["sandbox"]
    assert sandbox["entrypoint"] == ["python", "-m", "echo360_sandbox"]
    assert sandbox["command"][:4] == ["--host", "0.0.0.0", "--port", "8081"]
    assert "8080:8080" in sandbox["ports"]


def test_the_image_pins_airflow_and_is_built_from_the_sources_it_copies_only():
    dockerfile = (REPO / "Dockerfile").read_text()
    base_version = re.search(r"^FROM apache/airflow:([\d.]+)-", dockerfile, re.M)[1]
    (install,) = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install and base_version
    copied = {
        source for line in dockerfile.splitlines() if line.startswith("COPY") for source in line.split()[2:-1]
    }
    kept = {line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied == kept  # everything copied is sent, nothing else (no .venv, no .git)
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line[:1] not in ("", "#")]
    assert rules[0] == "*"  # ignore all, then take back what is copied
