"""Bring a database to the newest schema with Alembic, then seed reference data.

Called by every entry point (CLI, server start, tests) so that a fresh SQLite file
or an empty PostgreSQL database is usable at once.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from isps.db import transaction


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("isps").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    from isps.registry import geography
    from isps.targeting import pmt
    from isps.targeting.eligibility import rules
    from isps.targeting import vulnerability

    with transaction(engine) as session:
        geography.seed(session)
        pmt.install_shipped_models(session)
        rules.install_shipped_rules(session)
        vulnerability.install_hazard_layers(session)
        __import__("isps.catalogue", fromlist=["x"]).install_catalogue(session)
