"""The app of one ``serve --workers N`` worker process (uvicorn's ``factory``).

uvicorn starts each worker as a fresh (spawned) process and calls
:func:`create_worker_app` there. The serving command has exported its flags as
``RELEASEGATE_*`` variables, so a worker reads the same settings as the command; its app
lifespan opens the state directory's log and stores and starts the worker's own managed
OPA, and closes them when uvicorn stops the worker.
"""

from __future__ import annotations

from fastapi import FastAPI

from engine.api.app import create_app
from engine.api.logs import configure_logging
from engine.config import build_settings

FACTORY = "engine.api.worker:create_worker_app"


def create_worker_app() -> FastAPI:
    """Settings from the environment, JSON logs, the service app."""
    settings = build_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
