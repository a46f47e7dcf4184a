"""Airflow 3's REST API (``/api/v2``) as the harness drives it: pools, DAGs, backfills, runs, task
instances, XComs, asset events, variables, the connection Test button.

Every call is an admin's (the SimpleAuthManager runs with ``simple_auth_manager_all_admins``); an
answer that SQLite refused under load (``database is locked``) is tried again. :class:`AirflowApi`
is the client half of :class:`devtools.airflow_stack.AirflowStack`, which gives it its URLs, its HTTP
session, its watchdog and what a stuck wait reports; Airflow 2's ``/api/v1`` differs where
:class:`devtools.airflow2_stack.Airflow2Stack` says.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from devtools.processes import ProcessError, Watchdog, wait_for

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# Tries of an API call that SQLite refused with "database is locked", or of a GET unanswered in time.
LOCKED_ATTEMPTS = 4


class AirflowStackError(RuntimeError):
    """Raised when the stack cannot start, a REST call fails or a wait times out."""


class ApiError(AirflowStackError):
    """A non-2xx answer of the REST API (status and body kept)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:4000]}")
        self.status = status


def sqlite_locked(text: str) -> bool:
    """Whether an error says that SQLite refused it for a concurrent writer (worth another try)."""
    return "database is locked" in text.lower()


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def quietly(function: Any, *args: Any) -> Any:
    """``function(*args)``, or None while the api-server does not answer yet."""
    try:
        return function(*args)
    except (requests.RequestException, ApiError):
        return None


class AirflowApi:
    """The REST calls of a running Airflow 3; what it needs, its stack gives it."""

    _http: requests.Session
    watchdog: Watchdog

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    @property
    def api_url(self) -> str:
        raise NotImplementedError

    def stuck_report(self) -> str:
        """What a wait that timed out adds to its error (the stack: its components' last lines)."""
        return ""

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """Call ``/api/v2<path>``; return the decoded JSON (None when empty); raise on non-2xx.

        An answer that SQLite refused the call under load (``database is locked``) is retried a few
        times, a second apart, before it counts; so is a ``GET`` that got no answer in time (an
        api-server that also serves every task's Execution API can stall under load).
        """
        url = f"{self.api_url}/{path.lstrip('/')}"
        kw.setdefault("timeout", 30)
        for attempt in range(1, LOCKED_ATTEMPTS + 1):
            try:
                resp = self._http.request(method, url, **kw)
            except requests.Timeout:
                if method != "GET" or attempt == LOCKED_ATTEMPTS:
                    raise
                continue
            if resp.status_code == 401 and self._take_all_admins_token():
                resp = self._http.request(method, url, **kw)
            if 200 <= resp.status_code < 300:
                return resp.json() if resp.content else None
            if not (resp.status_code >= 500 and sqlite_locked(resp.text)) or attempt == LOCKED_ATTEMPTS:
                raise ApiError(method, url, resp.status_code, resp.text)
            time.sleep(1)

    def _take_all_admins_token(self) -> bool:
        """Airflow 3.1's SimpleAuthManager lets every request of the UI in as an admin, but not the
        REST API's: 3.1 has no ``SimpleAllAdminMiddleware`` (3.0 and 3.2+ do), so its API wants a
        JWT. With ``simple_auth_manager_all_admins`` one is handed out without credentials,
        ``GET /auth/token``: take it for the session's later calls. False if there is none."""
        resp = self._http.get(f"{self.base_url}/auth/token", timeout=30)
        if not resp.ok:
            return False
        self._http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        return True

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", path, params={**(params or {}), "limit": 100, "offset": len(out)})
            out.extend(page[key])
            if not page[key] or len(out) >= (page.get("total_entries") or 0):
                return out

    def asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The asset events the DAG's tasks emitted, oldest first."""
        return self._paged(
            "/assets/events", "asset_events", {"source_dag_id": dag_id, "order_by": "timestamp"}
        )

    def variables(self, prefix: str = "") -> dict[str, str]:
        """The Variables whose key starts with ``prefix``: key -> value (``GET <api>/variables``)."""
        every = self._paged("/variables", "variables")
        return {v["key"]: v["value"] for v in every if v["key"].startswith(prefix)}

    def create_pool(
        self, name: str, slots: int, include_deferred: bool = True, description: str | None = None
    ) -> dict[str, Any]:
        """Create a pool (``POST /api/v2/pools``)."""
        body = {"name": name, "slots": slots, "description": description or name}
        return self.api("POST", "/pools", json={**body, "include_deferred": include_deferred})

    def pool(self, name: str) -> dict[str, Any]:
        """A pool and its slots now (``occupied_slots``, ``running_slots``, ``deferred_slots``, ...)."""
        answer: dict[str, Any] = self.api("GET", f"/pools/{name}")
        return answer

    def connection_test(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        """``POST <api>/connections/test`` (the UI's Test button): ``{"status": ..., "message": ...}``."""
        answer: dict[str, Any] = self.api("POST", "/connections/test", json=dict(connection))
        return answer

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        """Wait until the dag-processor has serialized ``dag_id``; fail early on an import error."""

        def parsed() -> bool:
            try:
                self.api("GET", f"/dags/{dag_id}/details")  # needs the serialized DAG
                return True
            except ApiError as e:
                if e.status != 404:
                    raise
            if errors := self._paged("/importErrors", "import_errors"):
                text = "\n\n".join(f"{err['filename']}:\n{err['stack_trace']}" for err in errors)
                raise AirflowStackError(f"DAG {dag_id!r} not loaded; import errors:\n{text}")
            return False

        wait_for(parsed, timeout, f"DAG {dag_id!r} to be parsed", poll=1, watchdog=self.watchdog)

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        max_active_runs: int = 16,
        reprocess_behavior: str = "none",
        retry_for: float = 60,
    ) -> int:
        """Create a backfill the way the UI does (``POST /api/v2/backfills``); return its id.

        On SQLite, Airflow 3.3 answers 503 "Database is locked. Backfill creation is not supported
        on SQLite under concurrent access" when a scheduler write collides with the creation; it
        removes the partial backfill first, so the request is retried (for up to ``retry_for`` s).
        """
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "run_backwards": False,
            "dag_run_conf": {},
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return int(self.api("POST", "/backfills", json=body)["id"])
            except ApiError as e:
                if e.status != 503 or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return self.api("GET", f"/backfills/{backfill_id}")

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        params = {"run_type": run_type} if run_type else None
        return self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs", params)

    def wait_for_runs(
        self, dag_id: str, expected_count: int, timeout: float = 180, run_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until ``expected_count`` runs (of ``run_type`` if given) are success/failed.

        Returns every run of the DAG (of that type) at that moment, terminal or not.
        """
        runs: list[dict[str, Any]] = []

        def done() -> list[dict[str, Any]] | None:
            runs[:] = self.dag_runs(dag_id, run_type)
            return runs if sum(r["state"] in TERMINAL_RUN_STATES for r in runs) >= expected_count else None

        try:
            what = f"{expected_count} terminal runs of {dag_id}"
            return list(wait_for(done, timeout, what, poll=1, watchdog=self.watchdog))
        except ProcessError as e:
            stuck = "\n".join(self._describe_run(dag_id, run) for run in runs) or "no runs"
            raise AirflowStackError(f"{e}\nRuns of {dag_id}:\n{stuck}\n{self.stuck_report()}") from None

    def _describe_run(self, dag_id: str, run: dict[str, Any]) -> str:
        """``<run id>: <state>``, and for a run not over, the state of each of its tasks."""
        line = f"  {run['dag_run_id']}: {run['state']}"
        if run["state"] in TERMINAL_RUN_STATES:
            return line
        states = quietly(self.task_states, dag_id, run["dag_run_id"])
        if states is None:
            return f"{line} (task states unknown: the api-server does not answer)"
        return line + "".join(f"\n    {task}: {state}" for task, state in sorted(states.items()))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Task id -> state of every task instance of a run."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance (``.../taskInstances/{task_id}/{map_index}/tries``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return self.api("GET", path)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def clear_task(
        self, dag_id: str, run_id: str, task_id: str, *, include_downstream: bool = False
    ) -> list[dict[str, Any]]:
        """Clear one task instance (``POST /dags/{id}/clearTaskInstances``); return the cleared TIs."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "only_running": False,
            "reset_dag_runs": True,
            "include_downstream": include_downstream,
        }
        return self.api("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)["task_instances"]
