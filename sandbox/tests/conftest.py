"""What the sandbox's test modules share beside the root conftest's ``sandbox``: the session sandbox
reset around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devtools.sandbox import SandboxProcess


@pytest.fixture
def sb(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session sandbox, reset to its starting state before and after the test."""
    sandbox.reset(faults=True, config=True)
    yield sandbox
    sandbox.reset(faults=True, config=True)
