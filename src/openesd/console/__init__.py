"""The web console: static ES modules served at /console, speaking only the public API (decisions.md)."""

from openesd.console.routes import router

__all__ = ["router"]
