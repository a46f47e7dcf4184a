"""The release as a user meets it: the sdist and wheel that would be uploaded, checked as PyPI checks
them, served from a real package index, and installed with the README's "once it is published"
command into a fresh virtual environment that already holds the user's Airflow (2.11 and 3.3).

What the unit test of the wheel cannot see: that pip, with PyPI beside our index, resolves the
provider's dependencies without moving the user's Airflow, that Airflow then lists the provider, and
that the files installed are the ones just built.

Run it alone: ``uv run pytest tests/release`` (a few minutes; it reaches PyPI for the dependencies).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.processes import Process, free_port, http_ok

REPO = Path(__file__).parents[2]
NAME = "airflow-provider-echo360"
PACKAGE = "airflow_provider_echo360"

# The README's install line for the published package, run verbatim with <yours> replaced.
PUBLISHED_INSTALL = 'pip install airflow-provider-echo360 "apache-airflow==<yours>"'

# A command may hang on the network; none should take this long (seconds).
COMMAND_TIMEOUT = 900


@dataclass(frozen=True)
class UserAirflow:
    """An Airflow as a user already has it: the release, and the pins it needs to run today."""

    label: str
    requirements: tuple[str, ...]

    @property
    def version(self) -> str:
        (line,) = [r for r in self.requirements if r.startswith("apache-airflow==")]
        return line.removeprefix("apache-airflow==")

    @property
    def pins(self) -> list[str]:
        """What the README says to name beside the Airflow version (its compatibility table)."""
        return [r for r in self.requirements if not r.startswith("apache-airflow==")]


def _matrix_entry(label: str) -> UserAirflow:
    lines = (REPO / "matrix" / f"airflow-{label}.txt").read_text().splitlines()
    return UserAirflow(label, tuple(s for line in lines if (s := line.split("#", 1)[0].strip())))


def _locked_airflow() -> UserAirflow:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == "apache-airflow"]
    return UserAirflow(".".join(version.split(".")[:2]), (f"apache-airflow=={version}",))


AIRFLOWS = [_matrix_entry("2.11"), _locked_airflow()]


@dataclass(frozen=True)
class Dists:
    folder: Path
    wheel: Path
    sdist: Path


def _run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command to success and return its stdout; a failure shows both streams."""
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _source_version() -> str:
    """``__version__``, read as text: the one place the version is written."""
    text = (REPO / PACKAGE / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "airflow_provider_echo360/__init__.py sets __version__"
    return match.group(1)


def _wheel_sources(wheel: Path) -> dict[str, str]:
    """The sha256 of each of the provider's ``.py`` files in the wheel, by path."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if name.startswith(f"{PACKAGE}/") and name.endswith(".py")
        }


# Run by the user's Python: the provider's installed .py files and their sha256, from its metadata.
_INSTALLED_SOURCES = f"""
import hashlib, importlib.metadata, json
dist = importlib.metadata.distribution({NAME!r})
print(json.dumps({{
    str(f): hashlib.sha256(f.locate().read_bytes()).hexdigest()
    for f in dist.files if str(f).startswith({PACKAGE + "/"!r}) and str(f).endswith(".py")
}}))
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist, and the wheel built from it, as ``uv build`` makes them for an upload."""
    uv = shutil.which("uv")
    assert uv, "uv is on PATH wherever the tests run"
    folder = tmp_path_factory.mktemp("dist")
    _run([uv, "build", "--out-dir", str(folder), str(REPO)])
    (wheel,) = folder.glob("*.whl")
    (sdist,) = folder.glob("*.tar.gz")
    return Dists(folder, wheel, sdist)


@pytest.fixture(scope="module")
def index(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local package index serving the built files alone (pypiserver), as its ``/simple/`` URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/simple/"
    server = Process(
        # --disable-fallback: a name it does not hold is a 404 (PyPI answers it), not a redirect.
        [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port)]
        + ["--disable-fallback", str(dists.folder)],
        name="pypi-server",
        log_path=tmp_path_factory.mktemp("index") / "pypi-server.log",
        ready=lambda: http_ok(f"{url}{NAME}/"),
    )
    with server:
        yield url


def _user_env(venv: Path, airflow_home: Path, index_url: str) -> dict[str, str]:
    """A user's shell with the venv activated and pip pointed at our index, then PyPI.

    This machine's pip settings (config files, find-links, extra local indexes) and the test run's
    Airflow settings are left out: a user has neither. The CA bundle stays (the way to reach PyPI).
    """
    dropped = ("PIP_", "AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(venv),
        AIRFLOW_HOME=str(airflow_home),
        COLUMNS="250",  # `airflow providers list` draws its table one provider a line
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # Ours first; pip reads both, and the sha256 check below fails if a file came from elsewhere.
        PIP_INDEX_URL=index_url,
        PIP_EXTRA_INDEX_URL="https://pypi.org/simple",
    )
    return env


def _published_install(airflow: UserAirflow) -> list[str]:
    """The README's command for this Airflow, with the pins the README says to name beside it."""
    return [arg.replace("<yours>", airflow.version) for arg in shlex.split(PUBLISHED_INSTALL)] + airflow.pins


def _airflow_version(venv: Path, env: dict[str, str], cwd: Path) -> str:
    return _run(
        [str(venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"], env=env, cwd=cwd
    )


def _listed_versions(providers_list: str) -> list[str]:
    """The versions ``airflow providers list`` shows for this provider (its table's last column)."""
    rows = [[cell.strip() for cell in line.split("|")] for line in providers_list.splitlines()]
    return [row[-1] for row in rows if len(row) >= 3 and row[0] == NAME]


def test_the_readme_gives_the_command_this_test_runs() -> None:
    assert PUBLISHED_INSTALL in (REPO / "README.md").read_text()


@pytest.mark.release
@pytest.mark.timeout(600)
def test_the_distributions_pass_twine_and_hold_what_they_should(dists: Dists) -> None:
    _run([sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)])
    version = _source_version()
    assert dists.wheel.name == f"{PACKAGE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dists.wheel) as archive:
        files = archive.namelist()
        (entry_points,) = [f for f in files if f.endswith(".dist-info/entry_points.txt")]
        entry_points_text = archive.read(entry_points).decode()
    assert f"{PACKAGE}/py.typed" in files
    assert "[apache_airflow_provider]" in entry_points_text
    assert f"provider_info = {PACKAGE}:get_provider_info" in entry_points_text
    tops = {f.split("/", 1)[0] for f in files}
    assert tops == {PACKAGE, f"{PACKAGE}-{version}.dist-info"}, tops
    outside = {"example_dags", "tests", "devtools", "echo360_sandbox", "sandbox", "bench"}
    assert not [f for f in files if outside & set(f.split("/"))]
    with tarfile.open(dists.sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml", f"{PACKAGE}/py.typed"} <= members
    readme_links = set(re.findall(r"\]\(((?:docs|example_dags)/[^)#]+)", (REPO / "README.md").read_text()))
    assert readme_links - members == set(), "every file the README links to is in the sdist"
    assert f"## [{version}]" in (REPO / "CHANGELOG.md").read_text()


@pytest.mark.release
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("airflow", AIRFLOWS, ids=[a.label for a in AIRFLOWS])
def test_a_user_installs_the_published_provider_into_their_airflow(
    airflow: UserAirflow, dists: Dists, index: str, tmp_path: Path
) -> None:
    uv = shutil.which("uv")
    assert uv
    venv = tmp_path / "venv"
    env = _user_env(venv, tmp_path / "airflow-home", index)
    # The user's Airflow, there before the provider (uv's cache makes this quick; pip would do the same).
    _run([uv, "venv", "--quiet", "--seed", "--python", "3.11", str(venv)], cwd=tmp_path)
    _run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *airflow.requirements])
    before = _airflow_version(venv, env, tmp_path)
    assert before.strip() == airflow.version

    command = _published_install(airflow)
    assert command[0] == "pip"
    _run([str(venv / "bin" / "pip"), *command[1:]], env=env, cwd=tmp_path)

    assert _airflow_version(venv, env, tmp_path) == before
    listed = _run([str(venv / "bin" / "airflow"), "providers", "list"], env=env, cwd=tmp_path)
    assert _listed_versions(listed) == [_source_version()], listed
    installed = json.loads(
        _run([str(venv / "bin" / "python"), "-c", _INSTALLED_SOURCES], env=env, cwd=tmp_path)
    )
    built = _wheel_sources(dists.wheel)
    assert len(built) > 10
    assert installed == built
