"""The Airflow stack for this interpreter's Airflow: :class:`~devtools.airflow_stack.AirflowStack` on
Airflow 3, :class:`~devtools.airflow2_stack.Airflow2Stack` (same calls, Airflow 2's components and API)
on Airflow 2. Chosen here, so that neither stack module needs the other's."""

from __future__ import annotations

from typing import Any

from devtools.airflow2_stack import Airflow2Stack
from devtools.airflow_stack import AIRFLOW_MAJOR, AirflowStack


def airflow_stack(*args: Any, **kwargs: Any) -> AirflowStack:
    """A stack of this interpreter's Airflow; the arguments are :class:`AirflowStack`'s."""
    return (Airflow2Stack if AIRFLOW_MAJOR == 2 else AirflowStack)(*args, **kwargs)
