"""Command-line adapter (Typer)."""
