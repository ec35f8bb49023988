# One image for the worker, the producer CLI and the simulator.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY askq askq
COPY common common
COPY producer producer
COPY worker worker
COPY simulator simulator
COPY jobs.yaml ./
RUN pip install --no-cache-dir .
ENV ASKQ_CONFIG=/app/jobs.yaml
CMD ["askq", "--help"]
