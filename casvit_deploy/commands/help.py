"""`--help` on a terminal and in a log: rich panels on a terminal; anywhere else (a pipe, a
file, a CI log) plain text wrapped at the width (80 columns at most), where no option name,
word or hyphenated flag is ever cut or split, however narrow the description column."""

from __future__ import annotations

import re
import sys
import textwrap

from typer.core import TyperCommand, TyperGroup

# Typer's own click (the classes its commands use), reached through public attributes
_Context = TyperCommand.context_class


def _fill(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """`text`'s paragraphs (apart by blank lines) filled to `width`, whole words only, a blank
    line between paragraphs."""
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if lines:
            lines.append("")
        lines += textwrap.wrap(" ".join(paragraph.split()), width, initial_indent=first if not lines else rest,
                               subsequent_indent=rest, break_long_words=False, break_on_hyphens=False)
    return lines


class WholeWordsFormatter(_Context.formatter_class):
    """click's help layout, wrapping only at spaces."""

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write("\n".join(_fill(text, self.width, indent, indent)) + "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first_col = min(max((len(term) for term, _ in rows), default=0), col_max) + col_spacing
        indent = " " * (self.current_indent + first_col)
        for term, text in rows:
            head = " " * self.current_indent + term
            lines = _fill(text, max(self.width - first_col - 2, 10) + len(indent), indent, indent) if text else []
            if lines and len(term) <= first_col - col_spacing:
                lines[0] = head.ljust(len(indent)) + lines[0][len(indent):]
            else:
                lines.insert(0, head)
            self.write("\n".join(lines) + "\n")


class _LogContext(_Context):
    formatter_class = WholeWordsFormatter


def on_terminal() -> bool:
    return sys.stdout.isatty()


class _PlainInLogs:
    """A Typer command or group whose help is rich on a terminal and plain text elsewhere."""

    context_class = _LogContext

    def format_help(self, ctx, formatter) -> None:
        if on_terminal():
            return super().format_help(ctx, formatter)
        mode, self.rich_markup_mode = self.rich_markup_mode, None
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = mode


class Command(_PlainInLogs, TyperCommand):
    """Every `casvit` command's class."""


class Group(_PlainInLogs, TyperGroup):
    """The `casvit` group's base: its command list gives each command's first sentence whole."""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, command.get_short_help_str(limit=10**4)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
