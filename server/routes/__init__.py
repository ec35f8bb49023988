"""The API's routers, one module per resource."""

from fastapi import APIRouter

from server.routes import batches, events, jobs, metrics, openai_batches, openai_files

ROUTERS: list[APIRouter] = [
    batches.router,
    events.router,  # before jobs: /api/jobs/{job_id:path} would take /api/jobs/ID/events too
    jobs.router,
    openai_files.router,
    openai_batches.router,
    metrics.router,
]
"""Every router of the API, each included with the token dependency."""
