"""Secrets reach Airflow's masker from a worker and from inside a trigger, as each Airflow takes them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from airflow_provider_echo360.hooks import masking


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """What reached ``mask_secret``: the value, and whether it came on the thread that called ``mask``."""
    seen: list[tuple[str, bool]] = []
    caller = threading.get_ident()
    monkeypatch.setattr(
        masking, "mask_secret", lambda value: seen.append((value, threading.get_ident() == caller))
    )
    return seen


@pytest.mark.parametrize("airflow_3_0", [True, False], ids=["Airflow 3.0", "other Airflow"])
def test_outside_an_event_loop_the_secret_is_masked_at_once(monkeypatch, masked, airflow_3_0):
    monkeypatch.setattr(masking, "_MASK_OFF_THE_LOOP", airflow_3_0)
    masking.mask("s3cret")
    assert masked == [("s3cret", True)]


def test_inside_a_trigger_on_airflow_3_0_the_secret_goes_through_asgiref(monkeypatch, masked):
    monkeypatch.setattr(masking, "_MASK_OFF_THE_LOOP", True)

    async def trigger() -> None:
        masking.mask("t0ken")
        await asyncio.sleep(0)
        while masking._pending:  # handed over, not lost
            await asyncio.sleep(0.01)

    asyncio.run(trigger())
    assert masked == [("t0ken", False)]  # masked, off the event loop's thread


def test_inside_a_trigger_elsewhere_the_secret_is_masked_at_once(monkeypatch, masked):
    monkeypatch.setattr(masking, "_MASK_OFF_THE_LOOP", False)

    async def trigger() -> None:
        masking.mask("t0ken")

    asyncio.run(trigger())
    assert masked == [("t0ken", True)]
