"""The ASGI application: the API under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at
/api/docs) and the web app at /, over one database."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from sqlalchemy import Engine

from isps import __version__
from isps.access.service import Tokens
from isps.api.deps import Refused, refused_handler
from isps.api.headers import SecurityHeaders
from isps.config import allowed_origins, load_settings
from isps.db import default_engine, session_factory


def create_app(engine: Engine | None = None, secret: str | None = None) -> FastAPI:
    from isps.api.routes import router as api_router
    from isps.api.targeting import router as targeting_router
    from isps.api.vulnerability import router as vulnerability_router
    from isps.api.feeds import router as feeds_router
    from isps.api.errors import install as install_errors
    from isps.web.routes import bad_address_page
    from isps.web.routes import mount as mount_web

    settings = load_settings() if secret is None else None
    app = FastAPI(title="ISPS: Integrated Social Protection System", version=__version__,
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
                  description="The dynamic social registry of Punjab and the programs that stand on it.")
    app.state.engine = engine or default_engine()
    app.state.session_factory = session_factory(app.state.engine)
    app.state.tokens = Tokens(secret or settings.secret_key)
    app.state.field_secret = secret or settings.secret_key  # signs field devices' digest nonces
    app.state.allowed_origins = settings.allowed_origins if settings else allowed_origins()
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(Refused, refused_handler)
    # /dci (DCI Social Registry API) first: routes are matched in order, and partner systems' sync
    # searches are the hottest path; no other router serves a path under /dci
    app.include_router(__import__("isps.api.dci", fromlist=["router"]).router)
    app.include_router(api_router)
    app.include_router(targeting_router)
    app.include_router(vulnerability_router)
    app.include_router(feeds_router)
    app.include_router(__import__("isps.api.linkage", fromlist=["router"]).router)  # /api/v1/sbr
    app.include_router(__import__("isps.api.programs", fromlist=["router"]).router)  # enrolment and payments
    app.include_router(__import__("isps.api.labour", fromlist=["router"]).router)  # /api/v1/labour
    app.include_router(__import__("isps.api.sms", fromlist=["router"]).router)  # /api/v1/sms: aggregator callbacks
    app.include_router(__import__("isps.api.openrosa", fromlist=["router"]).router)  # /openrosa: ODK Collect
    mount_web(app)
    install_errors(app, page=bad_address_page)  # one error shape for /api/v1, a page for the web

    @app.get("/api/docs", include_in_schema=False)
    def api_docs():
        """Swagger UI from the vendored copy in web/static/swagger: the docs work offline too."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    return app
