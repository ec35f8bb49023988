"""The API's routers, one module per resource."""

from fastapi import APIRouter

from server.routes import events, jobs

ROUTERS: list[APIRouter] = [jobs.router, events.router]
"""Every router of the API, each included with the token dependency."""
