"""The decision service: ``create_app(settings)`` and its routes (contract §5)."""

from __future__ import annotations
