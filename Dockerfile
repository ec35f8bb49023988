# One image for the worker, the producer CLI, the HTTP API and the simulator.
# An exact version, not a floating tag (docs/production.md says how to pin the digest too).
FROM python:3.11.11-slim-bookworm
# The processes run as this fixed, unprivileged uid, never root; the installed code stays root-owned.
RUN groupadd --system --gid 10001 askq \
    && useradd --system --uid 10001 --gid askq --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin askq
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY askq askq
COPY common common
COPY producer producer
COPY worker worker
COPY simulator simulator
COPY server server
COPY jobs.yaml ./
RUN pip install --no-cache-dir .
ENV ASKQ_CONFIG=/app/jobs.yaml
USER 10001:10001
CMD ["askq", "--help"]
