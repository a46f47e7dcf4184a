from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
from importlib.metadata import entry_points

import airflow
import jsonschema

import airflow_provider_echo360
from airflow_provider_echo360 import get_provider_info


def test_provider_info_validates_against_airflows_schema():
    schema_path = pathlib.Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered():
    found = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_echo360")
    ]
    assert len(found) == 1
    assert found[0].load() is get_provider_info


def test_every_listed_module_imports_and_every_module_is_listed():
    info = get_provider_info()
    listed = {
        m
        for section in ("hooks", "operators", "sensors", "triggers")
        for e in info.get(section, [])
        for m in e["python-modules"]
    }
    listed |= {t["python-module"] for t in info.get("transfers", [])}
    for module in listed:
        importlib.import_module(module)
    package = pathlib.Path(airflow_provider_echo360.__file__).parent
    present = {
        f"airflow_provider_echo360.{path.parent.name}.{path.stem}"
        for role in ("hooks", "operators", "sensors", "triggers", "transfers")
        for path in (package / role).glob("*.py")
        if path.stem != "__init__"
    }
    assert present == listed
    hook = info["connection-types"][0]
    assert hook["connection-type"] == "echo360"
    assert hook["hook-class-name"] == "airflow_provider_echo360.hooks.echo360.Echo360Hook"


def test_airflow_providers_list_shows_the_package(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # Airflow 3.0 logs INFO lines to stdout
    airflow_cli = pathlib.Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow_cli), "providers", "list", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    providers = {p["package_name"]: p for p in json.loads(out.stdout)}
    assert providers["airflow-provider-echo360"]["version"] == airflow_provider_echo360.__version__
