"""Settings read from the environment, with embedded defaults for a laptop.

``ISPS_DATABASE_URL`` chooses the database: SQLite in ``./var/`` by default,
PostgreSQL in production (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


def var_dir() -> Path:
    path = Path(os.environ.get("ISPS_VAR_DIR", "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def normalise_database_url(url: str) -> str:
    """Accept the plain ``postgresql://`` spelling and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def database_url() -> str:
    url = os.environ.get("ISPS_DATABASE_URL")
    if url:
        return normalise_database_url(url)
    return f"sqlite:///{(var_dir() / 'isps.db').resolve()}"


def secret_key() -> str:
    """The key that signs sessions and tokens: from the environment, else kept in var/."""
    key = os.environ.get("ISPS_SECRET_KEY")
    if key:
        return key
    path = var_dir() / "secret.key"
    if not path.exists():  # created 0600 from the start: never readable by others, not even briefly
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def allowed_origins() -> tuple[str, ...]:
    """``ISPS_ALLOWED_ORIGINS``: the origins (``https://isps.punjab.gov.pk``, comma-separated) web
    forms may be posted from. Unset, a form must come from the address the server itself sees,
    which is wrong behind a reverse proxy that terminates TLS: set it there."""
    raw = os.environ.get("ISPS_ALLOWED_ORIGINS", "")
    return tuple(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())


def dci_test_partners() -> bool:
    """``ISPS_DCI_TEST_PARTNERS=1``: serve DCI test partners (a conformance suite's sandbox client,
    ``isps partners register --test``), which may send unsigned messages when registered with
    ``--accept-unsigned``. It must never be set in production: a test partner reads the registry it
    is pointed at like any partner, so a deployment that enables it must hold synthetic data only
    (``isps synth``). Unset (the default), test partners can be neither registered nor served, even
    those registered earlier. Read on every request, so switching it off takes effect at once."""
    return os.environ.get("ISPS_DCI_TEST_PARTNERS", "") == "1"


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    token_hours: int = 12
    allowed_origins: tuple[str, ...] = ()


def load_settings() -> Settings:
    return Settings(database_url=database_url(), secret_key=secret_key(), allowed_origins=allowed_origins())
