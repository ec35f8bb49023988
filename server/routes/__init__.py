"""The API's routers, one module per resource."""

from fastapi import APIRouter

from server.routes import jobs, metrics

ROUTERS: list[APIRouter] = [jobs.router, metrics.router]
"""Every router of the API, each included with the token dependency."""
