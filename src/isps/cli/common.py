"""What every ``isps`` sub-command shares: the console, the database (schema brought up to date
first) and a clean failure. The sub-command modules import from here, never from
:mod:`isps.cli.main`, which only assembles them."""

from __future__ import annotations

import typer
from rich.console import Console

from isps.db import default_engine

console = Console()


def _engine():
    from isps.migrate import upgrade

    engine = default_engine()
    upgrade(engine)
    return engine


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)
