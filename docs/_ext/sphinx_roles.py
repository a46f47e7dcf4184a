"""A griffe extension for the API reference: the docstrings' Sphinx roles become inline code.

The provider's docstrings are Sphinx-style (``:param x:``, ``:class:`ReportStatusTrigger```). The
``sphinx`` docstring style parses the fields; a role in the text would otherwise show as
``:class:`` before the name. Each becomes plain inline code: no link to resolve, so nothing that
strict mode could fail on.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|mod|func|meth|attr|exc|data|obj|const):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
