"""What the benchmarks print: their figures as JSON, then as a table to paste into ``bench/RESULTS.md``."""

from __future__ import annotations

import json
from typing import Any


def print_figures(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
    print("\n| figure | value |\n|---|---|")
    for name, value in result.items():
        print(f"| {name} | {value} |")
