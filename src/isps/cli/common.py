"""What every ``isps`` sub-command shares: the console, the database (schema brought up to date
first) and a clean failure. The sub-command modules import from here, never from
:mod:`isps.cli.main`, which only assembles them."""

from __future__ import annotations

import os
import sys

import rich.table
import typer
from rich.console import Console

from isps.db import default_engine

# Output sent to a file or a pipe has no terminal width; rich would then assume 80 columns and cut
# tables. It is laid out wide instead (COLUMNS still wins when set).
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)


class Table(rich.table.Table):
    """A table that never cuts a value short: a cell too wide for the terminal wraps onto the next
    line instead of ending in an ellipsis (an officer copies CNICs, ids and amounts from it)."""

    def add_column(self, header="", *args, overflow="fold", **kw) -> None:  # noqa: D102
        super().add_column(header, *args, overflow=overflow, **kw)


def _engine():
    from isps.migrate import upgrade

    engine = default_engine()
    upgrade(engine)
    return engine


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)
