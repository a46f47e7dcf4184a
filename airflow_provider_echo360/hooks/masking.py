"""Hand secrets to Airflow's log masker, from a worker or from a trigger alike."""

from __future__ import annotations

import asyncio

from airflow.providers.common.compat.sdk import mask_secret
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from asgiref.sync import sync_to_async

# Airflow 3.0's triggerer takes a secret to mask only from a thread asgiref runs: from the event loop
# itself, mask_secret raises "You cannot use AsyncToSync in the same thread as an async event loop".
_MASK_OFF_THE_LOOP = AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS
_pending: set[asyncio.Task[None]] = set()  # kept until done: the loop holds tasks only weakly


def mask(value: str) -> None:
    """``mask_secret(value)``; inside a trigger on Airflow 3.0, handed to asgiref's thread at once."""
    if _MASK_OFF_THE_LOOP:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(sync_to_async(mask_secret)(value))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
            return
    mask_secret(value)
