"""Module-level application for ``uvicorn isps.api.asgi:app`` (several worker processes)."""

from isps.api.app import create_app

app = create_app()
