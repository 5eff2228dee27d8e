"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cloud import registry as registry_mod
from cloud.api.deps import AppState
from cloud.api.middleware import AuditResidentAccess, RealClient
from cloud.api.routes import (
    admin,
    devices,
    followups,
    health,
    inspection_form,
    inspections,
    ops,
    waste,
)
from cloud.audit import AuditLog
from cloud.auth import TokenStore
from cloud.influx import InfluxClient
from cloud.settings import CloudSettings


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)


def audit_log(settings: CloudSettings) -> AuditLog:
    """The audit trail the settings name (`audit_log`, retention, bulk threshold)."""
    return AuditLog(
        settings.audit_path(),
        settings.audit_retention_days,
        settings.audit_bulk_residents,
        settings.audit_bulk_window_s,
    )


def create_app(settings: CloudSettings) -> FastAPI:
    """Build the API; the InfluxDB client lives as long as the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        influx = InfluxClient(settings.influx_config("api"))
        audit = audit_log(settings)
        audit.prune()  # and then once a day, on the first record of the day
        app.state.gumei = AppState(
            settings,
            influx,
            registry_mod.LiveRegistry(settings.registry),
            TokenStore(settings.tokens),
            audit,
        )
        yield
        influx.close()

    app = FastAPI(title="Gumei community IoT", version="1", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _one_line(exc)})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(waste.router)
    app.include_router(devices.router)
    app.include_router(admin.router)
    app.include_router(health.router)
    app.include_router(followups.router)
    app.include_router(inspections.router)
    app.include_router(inspection_form.router)
    app.add_exception_handler(inspection_form.FormProblem, inspection_form.problem_page)
    app.include_router(ops.router)
    # Outermost last: the real client is known before anything (audit, failed-login limits) uses it.
    app.add_middleware(AuditResidentAccess)
    app.add_middleware(RealClient, trusted=settings.api_forwarded_allow_ips)
    return app
