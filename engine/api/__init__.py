"""The decision service: ``create_app(settings)`` and its routes (contract §5)."""

from __future__ import annotations

from engine.api.app import create_app

__all__ = ["create_app"]
