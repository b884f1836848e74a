"""Tables on a terminal, records in a log: what a command prints for people.

On a terminal a table is drawn with rich. Anywhere else (a CI log, a file, a pipe) the
same table is written as plain lines, one record per line, `column: value` pairs apart
by " | ", never wrapped or cut: every number and name stays whole at any width.
Progress follows the same rule: a spinner on a terminal, one line per stage in a log.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

SEPARATOR = " | "
EMPTY = ("", "-", "–")


def plain_lines(text) -> list[str]:
    """The non-blank lines of a rich Text or markup string, without the markup."""
    value = text.plain if isinstance(text, Text) else Text.from_markup(str(text)).plain
    return [line for line in value.splitlines() if line.strip()]


def plain(cell) -> str:
    """A cell's text without markup, its lines joined by " / "."""
    return " / ".join(plain_lines(cell))


def records(table: Table) -> list[str]:
    """The table as lines: its title, one line per row (empty cells left out), its caption."""
    headers = [plain(column.header) for column in table.columns]
    columns = [[plain(cell) for cell in column.cells] for column in table.columns]
    lines = [plain(table.title)] if table.title else []
    for row in zip(*columns):
        if table.show_header:
            line = SEPARATOR.join(f"{h}: {v}" if h else v for h, v in zip(headers, row) if v not in EMPTY)
        else:  # a key/value table
            line = f"{row[0]}: {SEPARATOR.join(v for v in row[1:] if v not in EMPTY)}"
        lines.append(("  " if table.title else "") + line)
    if table.caption:
        lines += [f"  {line}" for line in plain_lines(table.caption)]
    return lines


def show(out: Console, *items) -> None:
    """Print tables (and markup strings) to `out`: drawn on a terminal, as records elsewhere."""
    for item in items:
        if item is None:
            continue
        if out.is_terminal:
            out.print(item)
        elif isinstance(item, Table):
            out.print("\n".join(records(item)), markup=False, highlight=False, soft_wrap=True)
        else:
            out.print("\n".join(plain_lines(item)), markup=False, highlight=False, soft_wrap=True)


class Status:
    """Progress of long work on stderr, each stage with the seconds since the start: a
    spinner on a terminal, one line per stage anywhere else (a CI log keeps them all)."""

    def __init__(self, first: str = "starting"):
        self.console = Console(stderr=True, highlight=False)
        self.started = time.perf_counter()
        self._first, self._spinner = first, None

    def __enter__(self) -> Status:
        if self.console.is_terminal:
            self._spinner = self.console.status(self._first)
            self._spinner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._spinner is not None:
            self._spinner.__exit__(*exc)

    def update(self, text: str) -> None:
        elapsed = f"{time.perf_counter() - self.started:.1f}s"
        if self._spinner is not None:
            self._spinner.update(f"{text} ({elapsed})")
        else:
            self.console.print(f"[{elapsed:>7}] {plain(text)}", markup=False, soft_wrap=True)
