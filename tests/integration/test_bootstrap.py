"""The quick start's bootstrap on a distribution's own Python: ``ensure_uv`` (``scripts/_uv.sh``) in an
empty environment (``env -i``, a new ``HOME``, ``PATH=/usr/bin:/bin``: no ``uv``), where pip refuses
to install anything (PEP 668's ``EXTERNALLY-MANAGED``), and where Python has no ``pip``, ``venv`` or
``ensurepip`` at all (Debian ships them as separate packages). Fetches uv from PyPI, as a newcomer's
first command does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
pytestmark = [
    pytest.mark.one_airflow,  # the quick start's own script, before any Airflow
    pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3 here"),
]

#: Imported by the system Python at start-up (``PYTHONPATH``): as if pip, venv and ensurepip were absent.
WITHOUT_PIP_AND_VENV = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pip", "venv", "ensurepip"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""


def checkout(tmp_path: Path) -> Path:
    """A checkout holding only what the bootstrap reads."""
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    for name in ("_uv.sh", "bootstrap_uv.py"):
        shutil.copy(REPO / "scripts" / name, tmp_path / "repo" / "scripts" / name)
    return tmp_path / "repo"


def bare_shell(tmp_path: Path, script: str, bin_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` in bash with nothing of this environment: a new HOME, the system's PATH, no pip config."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = f"{bin_dir}:/usr/bin:/bin" if bin_dir else "/usr/bin:/bin"
    env = ["env", "-i", f"HOME={home}", f"PATH={path}", "PIP_CONFIG_FILE=/dev/null"]
    return subprocess.run([*env, "bash", "-c", script], capture_output=True, text=True, timeout=300)


def assert_bootstrapped(tmp_path: Path, repo: Path, bin_dir: Path | None = None) -> None:
    assert bare_shell(tmp_path, "command -v uv", bin_dir).returncode != 0, "uv is on the bare PATH"
    done = bare_shell(
        tmp_path,
        f"source {repo}/scripts/_uv.sh && ensure_uv && command -v uv"
        f" && uv venv --quiet --python python3 {tmp_path}/env && {tmp_path}/env/bin/python -c 'print(1)'",
        bin_dir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"{repo}/.tools/bin/uv", done.stdout
    assert "uv 0.13.9" in done.stderr, done.stderr
    assert not (tmp_path / "home" / ".local").exists(), "something was installed for the user's Python"
    # A second call finds the fetched binary: nothing fetched again.
    again = bare_shell(tmp_path, f"source {repo}/scripts/_uv.sh && ensure_uv", bin_dir)
    assert again.returncode == 0 and "fetching" not in again.stderr, again.stderr


def test_on_an_externally_managed_python_the_bootstrap_fetches_uv_without_pip(tmp_path):
    stdlib = subprocess.check_output(
        [SYSTEM_PYTHON, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], text=True
    )
    if not (Path(stdlib.strip()) / "EXTERNALLY-MANAGED").exists():
        pytest.skip("this system's Python is not marked EXTERNALLY-MANAGED (PEP 668)")
    refused = bare_shell(tmp_path, "python3 -m pip install --user uv")
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr, refused.stderr
    assert_bootstrapped(tmp_path, checkout(tmp_path))


def test_on_a_python_without_pip_venv_or_ensurepip_the_bootstrap_fetches_uv(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_PIP_AND_VENV)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {SYSTEM_PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    for module in ("pip", "venv", "ensurepip"):
        missing = bare_shell(tmp_path, f"python3 -m {module} --help", bin_dir)
        assert missing.returncode != 0 and "No module named" in missing.stderr, (module, missing.stderr)
    assert_bootstrapped(tmp_path, checkout(tmp_path), bin_dir)
