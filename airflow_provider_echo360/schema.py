"""The schema contract: a report's header against the columns the catalog knows for it.

Echo360 retires and renames reports (``polling`` → ``pollingv2``, ``qanda`` → ``qanda2``); a report
whose columns change under a table that reads them should not land without a word. Each transfer
compares the header it lands with the catalog's columns (:mod:`airflow_provider_echo360.reports`) and,
by its ``schema_policy``, warns, fails before writing anything, or lets it be; either way the drift
is named in the window's manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_echo360.hooks.model import REPORT_ALIASES
from airflow_provider_echo360.reports import CATALOG

#: What a transfer does with a header that is not the catalog's.
SCHEMA_POLICIES = ("warn", "fail", "allow")
#: Columns whose names the vendor's page lost (its tables read ``user email | |``): the catalog names
#: them by guess, so whatever name stands in their place is accepted.
GUESSED_COLUMNS = frozenset({"email", "userEmail"})


@dataclass(frozen=True)
class SchemaDrift:
    """How a header differs from the catalog's columns.

    :param new: columns the catalog does not know.
    :param missing: catalog columns the header lacks.
    :param renamed: catalog name -> the name found in its place (a header of the same width).
    """

    new: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.new or self.missing or self.renamed)

    def describe(self) -> str:
        parts = [f"new {self.new}" if self.new else "", f"missing {self.missing}" if self.missing else ""]
        parts.append(", ".join(f"{old!r} renamed {new!r}" for old, new in self.renamed.items()))
        return "; ".join(part for part in parts if part)

    def as_json(self) -> dict[str, Any]:
        return {"new": self.new, "missing": self.missing, "renamed": self.renamed}


def expected_columns(report_name: str) -> tuple[str, ...]:
    """The catalog's columns of a report, by any of its names (none for a report it does not know)."""
    name = report_name.lower()
    definition = CATALOG.get(name) or CATALOG.get(REPORT_ALIASES.get(name, ""))
    return definition.columns if definition is not None else ()


def schema_drift(expected: Sequence[str], found: Sequence[str]) -> SchemaDrift:
    """The drift of the header ``found`` from ``expected``; none where either is unknown (a report the
    catalog does not describe, a report without a byte)."""
    if not expected or not found:
        return SchemaDrift()
    if len(expected) == len(found):
        renamed = {
            old: new
            for old, new in zip(expected, found, strict=True)
            if old != new and old not in GUESSED_COLUMNS
        }
        return SchemaDrift(renamed=renamed)
    guessed_in_place = GUESSED_COLUMNS & set(expected)
    new = [
        name for name in found if name not in expected and not (guessed_in_place and "mail" in name.lower())
    ]
    missing = [name for name in expected if name not in found and name not in GUESSED_COLUMNS]
    return SchemaDrift(new=new, missing=missing)
