"""Markdown tables and percentages, written one way for every report, experiment and script.

Example:

>>> print(markdown_table(["model", "clean"], [["madry", percent(0.979)]]))
| model | clean |
| --- | ---: |
| madry | 97.90% |
"""
from __future__ import annotations

from typing import Sequence


def percent(value, digits: int = 2) -> str:
    """`0.979` -> `"97.90%"`; None or NaN -> `"n/a"`."""
    if value is None or value != value:
        return "n/a"
    return f"{100 * float(value):.{digits}f}%"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the others right-aligned.

    Args:
        header: column names.
        rows: one sequence of cells per row (converted with `str`).
        title: optional `### title` line above the table.
    """
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(map(str, header)) + " |")
    lines.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
