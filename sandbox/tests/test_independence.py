"""The sandbox stands on its own: it imports nothing of Airflow nor of the provider it is used to test.

A sandbox built from the provider's code could only prove that the provider agrees with itself.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

FORBIDDEN = ("airflow", "airflow_provider_echo360")


def package_dir() -> Path:
    spec = importlib.util.find_spec("echo360_sandbox")  # finds it without running it
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def imported_names(source: str) -> set[str]:
    """Every module a source file imports: statements, and ``import_module``/``__import__`` of a literal."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def forbidden(names: set[str] | list[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in FORBIDDEN)


def test_the_checker_sees_every_kind_of_import() -> None:
    source = textwrap.dedent(
        """
        import airflow.sdk
        from airflow_provider_echo360.reports import CATALOG
        import importlib
        importlib.import_module("airflow_provider_echo360.hooks")
        from . import sibling
        """
    )
    assert forbidden(imported_names(source)) == [
        "airflow.sdk",
        "airflow_provider_echo360.hooks",
        "airflow_provider_echo360.reports",
    ]


def test_no_module_of_the_sandbox_imports_airflow_or_the_provider() -> None:
    modules = sorted(package_dir().rglob("*.py"))
    assert {m.stem for m in modules} >= {"__init__", "__main__", "app", "catalog", "config", "assets"}
    assert {m.stem for m in modules} >= {"cli", "client", "state", "validation"}

    found = {str(m.name): forbidden(imported_names(m.read_text())) for m in modules}

    assert {name: bad for name, bad in found.items() if bad} == {}


_RUN_EVERYTHING = textwrap.dedent(
    """
    import base64, json, pkgutil, sys
    import anyio
    import uvicorn  # what main() serves the app with
    import echo360_sandbox
    for module in pkgutil.walk_packages(echo360_sandbox.__path__, "echo360_sandbox."):
        __import__(module.name)
    from echo360_sandbox.cli import build_parser, config_from_args
    from echo360_sandbox.app import create_app
    from echo360_sandbox.catalog import REPORTS
    from echo360_sandbox.rows import iter_lines
    from echo360_sandbox.client import SandboxClient

    config = config_from_args(build_parser().parse_args(["--processing-seconds", "0", "--rows-per-day", "3"]))
    app = create_app(config)
    app.openapi()
    for report in REPORTS.values():
        list(iter_lines(report, [None], 3, 0))
    SandboxClient("http://127.0.0.1:8360").api_url

    async def call(method, path, body=b"", headers=()):
        sent, answer = [], {}
        async def receive():
            if not sent:
                sent.append(True)
                return {"type": "http.request", "body": body, "more_body": False}
            await anyio.sleep(3600)
        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] = answer.get("body", b"") + message.get("body", b"")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"sandbox.test"), *headers], "client": ("127.0.0.1", 1),
            "server": ("sandbox.test", 80),
        }
        await app(scope, receive, send)
        return answer["status"], json.loads(answer["body"] or b"null")

    async def session():
        form = b"grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret"
        kind = (b"content-type", b"application/x-www-form-urlencoded")
        status, token = await call("POST", "/oauth2/access_token", form, [kind])
        assert status == 200, token
        bearer = [(b"authorization", b"Bearer " + token["access_token"].encode())]
        api = "/public/api/v1/reporting"
        assert (await call("GET", api + "/reports", headers=bearer))[0] == 200
        body = json.dumps({"parameters": {"start": "2024-01-01", "end": "2024-01-02"}}).encode()
        json_kind = (b"content-type", b"application/json")
        status, created = await call("POST", api + "/requests/videoview", body, [*bearer, json_kind])
        assert status == 200, created
        status, detail = await call("GET", api + "/request/" + created["requestId"], headers=bearer)
        assert status == 200 and detail["status"] == "Available", detail
        assert (await call("GET", "/_sandbox/stats"))[1]["submitted"] == 1

    anyio.run(session)
    print(json.dumps(sorted(sys.modules)))
    """
)


def test_running_the_sandbox_loads_neither_airflow_nor_the_provider() -> None:
    # -I: no PYTHONPATH, no current directory on sys.path (the repository root holds the provider).
    result = subprocess.run(
        [sys.executable, "-I", "-c", _RUN_EVERYTHING], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    entry_point = {"echo360_sandbox.__main__", "echo360_sandbox.cli", "echo360_sandbox.cli_dialects"}
    assert {"echo360_sandbox.app", *entry_point, "fastapi", "uvicorn"} <= set(loaded)
    assert forbidden(loaded) == []


def test_help_runs_without_airflow_or_the_provider() -> None:
    code = "import runpy, sys; sys.argv = ['x', '--help']\n"
    code += (
        "try:\n    runpy.run_module('echo360_sandbox', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    )
    code += "import json; print(json.dumps(sorted(sys.modules)))"

    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "--token-auth" in result.stdout
    assert forbidden(json.loads(result.stdout.strip().splitlines()[-1])) == []
