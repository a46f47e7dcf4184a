"""The example DAGs, copied as ``docs/first-dag.md`` tells it into an empty DAGs folder, load there.

The copy command is the docs' own bash block, run verbatim, so that the page and this test cannot
drift apart. The folder is then parsed as Airflow's processes parse one (the folder on ``sys.path``,
``.airflowignore`` applied), with nothing of this repository importable, as in a user's Airflow.
The failure it guards against is shown to be real: the daily DAG copied without its settings
module does not load, and without ``.airflowignore`` Airflow parses the settings module as a DAG
file.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
from airflow.providers.common.compat import version_compat
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

if AIRFLOW_V_3_2_PLUS:
    from airflow.dag_processing.dagbag import BundleDagBag
else:
    from airflow.models.dagbag import DagBag

REPO = pathlib.Path(__file__).parents[2]
EXAMPLES = REPO / "example_dags"
WALKTHROUGH = REPO / "docs" / "first-dag.md"
SETTINGS = "echo360_example_settings"
DAILY = "echo360_daily_to_s3.py"


def bash_blocks(markdown: str) -> list[str]:
    """The fenced ```bash blocks of a Markdown page, in order."""
    return re.findall(r"^```bash\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def copy_block() -> str:
    """The docs' block that copies the example DAGs: the one that names ``example_dags/``."""
    blocks = [block for block in bash_blocks(WALKTHROUGH.read_text()) if "example_dags/" in block]
    assert len(blocks) == 1, f"expected one copy block in {WALKTHROUGH.name}, found {len(blocks)}"
    return blocks[0]


def run_copy(airflow_home: pathlib.Path) -> pathlib.Path:
    """Run the docs' copy block verbatim from the repository root; return the DAGs folder it filled."""
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", copy_block()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return airflow_home / "dags"


def gated_dag_ids(path: pathlib.Path) -> set[str]:
    """The ``dag_id=`` literals of a DAG file that this Airflow defines: a DAG under
    ``if AIRFLOW_V_...:`` (a flag of ``version_compat``) counts where the flag holds."""
    tree = ast.parse(path.read_text())
    parents: dict[ast.AST, ast.AST] = {
        child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        child: ast.AST
        if not (isinstance(node, ast.keyword) and node.arg == "dag_id"):
            continue
        value = node.value
        assert isinstance(value, ast.Constant) and isinstance(value.value, str), f"{path.name}: dag_id"
        defined, child, parent = True, node, parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.If):
                assert isinstance(parent.test, ast.Name), f"{path.name}: a DAG under an unknown condition"
                holds = bool(getattr(version_compat, parent.test.id))
                defined &= holds if child in parent.body else not holds
            child, parent = parent, parents.get(parent)
        if defined:
            found.add(value.value)
    return found


def expected_dag_ids(folder: pathlib.Path) -> set[str]:
    return {dag_id for path in folder.glob("*.py") for dag_id in gated_dag_ids(path)}


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """No folder holding the settings module on ``sys.path`` and no earlier import of it (the other
    example-DAG tests leave ``example_dags`` on ``sys.path``): as in a fresh Airflow process, a
    copied DAG finds the module in its own DAGs folder or nowhere."""
    monkeypatch.setattr(
        sys, "path", [p for p in sys.path if not (pathlib.Path(p or ".") / f"{SETTINGS}.py").exists()]
    )
    monkeypatch.delitem(sys.modules, SETTINGS, raising=False)


def parse(folder: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Parse ``folder`` as the dag-processor does: the folder on ``sys.path``, ``.airflowignore``
    applied; ``sys.path`` and the settings module are put back afterwards."""
    with monkeypatch.context() as patched:
        patched.setattr(sys, "path", list(sys.path))  # BundleDagBag appends to sys.path for good
        patched.delitem(sys.modules, SETTINGS, raising=False)
        if AIRFLOW_V_3_2_PLUS:
            bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder)
        else:
            patched.syspath_prepend(str(folder))  # what Airflow 2's DAGs folder setting does
            bag = DagBag(dag_folder=str(folder), include_examples=False)
        patched.delitem(sys.modules, SETTINGS, raising=False)
    return bag


def parsed_files(bag: Any) -> set[str]:
    """The names of the files the DagBag executed."""
    return {pathlib.Path(path).name for path in bag.file_last_changed} | {
        pathlib.Path(path).name for path in bag.import_errors
    }


def test_the_copy_command_is_one_cp_of_the_dag_files_and_their_settings() -> None:
    """The docs' instruction copies every DAG file, the settings module once, and .airflowignore."""
    block = copy_block()
    copies = [line for line in block.splitlines() if line.startswith("cp ")]
    assert len(copies) == 1, block
    assert "example_dags/echo360_*.py" in copies[0] and "example_dags/.airflowignore" in copies[0]


@pytest.mark.usefixtures("clean_imports")
def test_the_documented_copy_loads_every_example_dag(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "airflow-home"
    assert not home.exists()  # the DAGs folder starts empty: it does not exist yet
    dags = run_copy(home)
    shipped = {p.name for p in EXAMPLES.glob("echo360_*.py")} | {".airflowignore"}
    assert {p.name for p in dags.iterdir()} == shipped
    expected = expected_dag_ids(dags)
    assert "echo360_daily_to_s3" in expected and len(expected) >= 5  # the files were read
    bag = parse(dags, monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == expected
    assert f"{SETTINGS}.py" not in parsed_files(bag)  # .airflowignore kept it out


@pytest.mark.usefixtures("clean_imports")
def test_the_daily_dag_copied_alone_does_not_load(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the issue saw: the DAG file without its settings module fails to import."""
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLES / DAILY, dags)
    bag = parse(dags, monkeypatch)
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert f"No module named '{SETTINGS}'" in error


@pytest.mark.usefixtures("clean_imports")
def test_without_airflowignore_the_settings_module_is_parsed_as_a_dag_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why .airflowignore is in the copy: Airflow's heuristic takes the settings module (it names
    both ``airflow`` and ``DAG``) for a DAG file, and executes it at every parse."""
    dags = run_copy(tmp_path / "airflow-home")
    (dags / ".airflowignore").unlink()
    bag = parse(dags, monkeypatch)
    assert bag.import_errors == {}
    assert f"{SETTINGS}.py" in parsed_files(bag)
    assert set(bag.dag_ids) == expected_dag_ids(dags)  # harmless otherwise: it defines no DAG


def test_the_readme_tells_the_same_copy_as_the_walkthrough():
    readme = [block for block in bash_blocks((REPO / "README.md").read_text()) if "example_dags/" in block]
    assert readme == [copy_block()]
