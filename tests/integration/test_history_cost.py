"""A year of history: what one window costs when the institution's listing holds 5,000 submissions.

The listing keeps every submission (``Expired`` once its report is deleted), so it only grows. The
operator must cost the same on a fresh institution and after years of daily runs, whichever order
the listing comes in and however it is paged, and the lost-answer lookup must still find a request.
A sandbox of its own per case, as a real process.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import pytest

from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.transport import MEMORY
from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration
DAY = dt.date.today() - dt.timedelta(days=20)
HISTORY = 5000
PAGINGS = {
    "unpaged": {"requests_page_size": 0},
    "next URL": {"requests_page_size": 50, "requests_paging": "link"},
    "cursor": {"requests_page_size": 50, "requests_paging": "cursor"},
    "Link header": {"requests_page_size": 50, "requests_paging": "header"},
}


class TaskStateStore(dict):
    """Airflow 3.3's task state store, in memory (this process is no task: Variables cannot be set)."""

    def set(self, key, value, *, retention=None):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


# Only the hook reads the listing's order and paging, the same on every Airflow: the version matrix
# runs the first case.
CASES = [(order, paging) for order in ("newest", "oldest") for paging in PAGINGS]


@pytest.fixture(params=[CASES[0], *(pytest.param(case, marks=pytest.mark.one_airflow) for case in CASES[1:])])
def sandbox(request, monkeypatch):
    order, paging = request.param
    options = {"processing_seconds": 1, "rows_per_day": 10, "rate_limit": 0, "requests_order": order}
    with SandboxProcess(**options, **PAGINGS[paging]) as started:
        MEMORY.forget()
        # No client-side pacing: a whole listing is 101 pages where it is oldest first.
        extra = {"backoff_seconds": 0.05, "calls_per_minute": 0}
        monkeypatch.setenv("AIRFLOW_CONN_ECHO360_HISTORY", started.airflow_connection(extra=extra))
        yield started


def window(offset: int) -> tuple[str, str]:
    start = DAY + dt.timedelta(days=offset)
    return start.isoformat(), (start + dt.timedelta(days=1)).isoformat()


def calls(sandbox: SandboxProcess) -> dict[str, int]:
    """API calls so far by endpoint, the token's aside (cached per process)."""
    return {k: v for k, v in sandbox.stats()["calls"].items() if "token" not in k}


def submit_and_wait(offset: int, store: TaskStateStore | None = None) -> tuple[Any, SubmitReportOperator]:
    start, end = window(offset)
    op = SubmitReportOperator(
        task_id="submit",
        report_name="videoview",
        start=start,
        end=end,
        echo360_conn_id="echo360_history",
        deferrable=False,
        poll_interval=0.5,
        data_lag=0,
    )
    ti = mock.MagicMock(dag_id="daily", run_id=f"run{offset}", task_id="submit", map_index=-1)
    return op.execute({"ti": ti, "task_state_store": store if store is not None else TaskStateStore()}), op


def cost_of_one_window(sandbox: SandboxProcess, offset: int) -> dict[str, int]:
    before = calls(sandbox)
    submit_and_wait(offset)
    after = calls(sandbox)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_a_windows_cost_is_flat_in_history(sandbox):
    fresh = cost_of_one_window(sandbox, 0)
    sandbox.set_config(history=HISTORY)
    assert sandbox.stats()["history"] == HISTORY
    aged = cost_of_one_window(sandbox, 1)
    # Polls depend on timing; the listing and the submission must not depend on history.
    assert aged["GET /requests"] <= max(fresh["GET /requests"], 1) + 1, (fresh, aged)
    assert aged["POST /requests/{reportName}"] == fresh["POST /requests/{reportName}"] == 1
    assert sum(aged.values()) <= 2 * sum(fresh.values()), (fresh, aged)


def test_a_retry_looks_its_own_request_up_and_submits_nothing(sandbox):
    sandbox.set_config(history=HISTORY, processing_seconds=600)
    store = TaskStateStore()
    with mock.patch.object(SubmitReportOperator, "_wait", side_effect=SystemExit):  # killed mid-wait
        with pytest.raises(SystemExit):
            submit_and_wait(0, store)
    before = calls(sandbox)
    waited_on = mock.patch.object(SubmitReportOperator, "_wait", side_effect=lambda _, request, *a: request)
    with waited_on as wait:  # the retry: a new process, XCom cleared
        request, _ = submit_and_wait(0, store)
    after = calls(sandbox)
    assert request.in_progress and wait.call_count == 1  # it waits on the request it found
    assert sandbox.stats()["submitted"] == 1
    assert after.get("GET /requests", 0) == before.get("GET /requests", 0)
    assert store["echo360_submission"]["request_id"] == request.request_id


def test_the_lost_answer_lookup_finds_the_submission_among_the_history(sandbox):
    sandbox.set_config(history=HISTORY)
    hook = Echo360Hook("echo360_history")
    hook.get_reports()  # the token first: the lost answer must be the submission's
    sandbox.set_faults(fault_rate=1.0, faults=["lost-response"], fault_targets=["api"], fault_budget=1)
    request = hook.submit_request("videoview", dict(zip(("start", "end"), window(0), strict=True)))
    assert sandbox.stats()["submitted"] == 1
    assert request.request_id in {r.request_id for r in hook.get_requests()}
