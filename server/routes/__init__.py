"""The API's routers, one module per resource."""

from fastapi import APIRouter

from server.routes import batches, jobs

ROUTERS: list[APIRouter] = [jobs.router, batches.router]
"""Every router of the API, each included with the token dependency."""
