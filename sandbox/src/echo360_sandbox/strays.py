"""Stray rows (``SandboxConfig.stray_rows``): records of a dated report that no day of its window can
take. The vendor's page gives every timestamp in UTC and each dated report the events of its window,
but says nothing of an event whose time was lost, garbled or filed late; a client that lands records
day by day must still put such records somewhere. With ``stray_rows=N``, every asset of a dated
request that has rows (an empty window stays empty) holds N more rows, spread evenly among its usual
ones. Each is drawn as a usual row is (the same pools, from a generator seeded by the seed, the
report, the window and the asset's part: the same request always gives the same bytes), but its time
column (:attr:`~echo360_sandbox.catalog.Report.time_column`) holds, in turn (:data:`STRAY_KINDS`),
nothing (``""``), text that is no time (``"not a date"``) and a valid timestamp outside the window: on
the day ``end`` names, the first one past the window (``end`` is exclusive). A window's strays are its
own: with them, 14 days are no longer two windows of 7 days glued together.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence

#: What a stray row's time column holds, in turn: nothing, text that is no time, a time out of the window.
STRAY_KINDS = ("empty", "unreadable", "outside")
#: The text of an ``unreadable`` time.
UNREADABLE = "not a date"
#: The ``empty`` and ``unreadable`` times as written (``csv.QUOTE_NONNUMERIC``: strings quoted).
_TOKENS = {"empty": '""', "unreadable": f'"{UNREADABLE}"'}


def stray_kind(index: int) -> str:
    """The kind of the ``index``-th (from 0) stray row of an asset."""
    return STRAY_KINDS[index % len(STRAY_KINDS)]


def outside_day(parameters: Mapping[str, str]) -> dt.date:
    """The day an ``outside`` stray row is stamped with: ``end``, the first day past the window."""
    return dt.date.fromisoformat(parameters["end"])


def stray_lines(
    rows: Iterable[Sequence[str]], time_at: Sequence[int], delimiter: str, line_end: str
) -> Iterator[str]:
    """Usual rows (their tokens, drawn on :func:`outside_day`) as stray lines: the tokens at
    ``time_at`` (the time column; none where a header drift dropped it) emptied, garbled or kept, in
    turn."""
    for index, tokens in enumerate(rows):
        replacement = _TOKENS.get(stray_kind(index))
        if replacement is not None:
            tokens = [replacement if n in time_at else token for n, token in enumerate(tokens)]
        yield delimiter.join(tokens) + line_end


def spread(lines: Iterable[str], count: int, strays: Sequence[str]) -> Iterator[str]:
    """The ``count`` usual ``lines`` with ``strays`` evenly among them: the ``k``-th (from 1) of ``n``
    strays right after ``k * count // (n + 1)`` usual lines (after none when there are none)."""
    usual = iter(lines)
    position = 0
    for k, stray in enumerate(strays, start=1):
        until = k * count // (len(strays) + 1)
        yield from itertools.islice(usual, until - position)
        position = until
        yield stray
    yield from usual
