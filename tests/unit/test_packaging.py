"""The provider's distribution holds the provider only; the sandbox is its own, a workspace member."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import tomllib
import zipfile

REPO = pathlib.Path(__file__).parents[2]
ROOT = tomllib.loads((REPO / "pyproject.toml").read_text())
SANDBOX = tomllib.loads((REPO / "sandbox" / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_provider_wheel_holds_only_the_provider_and_needs_no_sandbox() -> None:
    assert ROOT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["airflow_provider_echo360"]
    assert not names(ROOT["project"]["dependencies"]) & {"fastapi", "uvicorn", "echo360-sandbox"}
    assert not list((REPO / "airflow_provider_echo360").glob("sandbox/*.py"))


def test_the_sandbox_is_a_workspace_member_of_the_dev_environment() -> None:
    assert ROOT["tool"]["uv"]["workspace"]["members"] == ["sandbox"]
    assert ROOT["tool"]["uv"]["sources"]["echo360-sandbox"] == {"workspace": True}
    assert "echo360-sandbox" in names(ROOT["dependency-groups"]["test"])
    assert {"include-group": "test"} in ROOT["dependency-groups"]["dev"]
    assert SANDBOX["project"]["name"] == "echo360-sandbox"
    assert SANDBOX["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/echo360_sandbox"]
    assert {"fastapi", "uvicorn", "requests", "anyio"} <= names(SANDBOX["project"]["dependencies"])
    assert not any(n.startswith("apache-airflow") for n in names(SANDBOX["project"]["dependencies"]))


def test_pytest_and_mypy_cover_the_sandbox() -> None:
    assert "sandbox/tests" in ROOT["tool"]["pytest"]["ini_options"]["testpaths"]
    assert "echo360_sandbox" in ROOT["tool"]["mypy"]["packages"]


def test_test_modules_have_names_of_their_own() -> None:
    """The test folders are no packages (pytest's default import mode): two modules of one name in
    the same run stop its collection ("import file mismatch")."""
    modules = [
        path.name for folder in ("tests", "sandbox/tests") for path in (REPO / folder).rglob("test_*.py")
    ]
    assert sorted({name for name in modules if modules.count(name) > 1}) == []


def test_the_image_installs_the_sandbox_that_compose_runs() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY --chown=airflow:root sandbox/src /opt/echo360/sandbox/src" in dockerfile
    assert re.search(r'pip install .*"/opt/echo360/sandbox"', dockerfile)


def test_the_built_wheel_carries_license_urls_typing_marker_and_classifiers(tmp_path: pathlib.Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is on PATH wherever ./scripts/test runs"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)], check=True, capture_output=True
    )
    (wheel,) = tmp_path.glob("airflow_provider_echo360-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        (metadata_name,) = [f for f in files if f.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    assert "airflow_provider_echo360/py.typed" in files
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files), files
    assert "Project-URL: Echo360 Reporting API, https://echo360.org/reporting" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
    assert "Classifier: Framework :: Apache Airflow :: Provider" in metadata
