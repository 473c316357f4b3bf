"""How every command stops on a user's mistake: one line on stderr naming the fix, exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Print ``cachewatch: message`` to stderr and exit 2 (a usage or configuration error)."""
    typer.echo(f"cachewatch: {message}", err=True)
    raise typer.Exit(2)
