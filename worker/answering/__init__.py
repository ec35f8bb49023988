"""Answering one question: the arq job function, the provider seam (client, SSE reader, errors, the
start-up check), retries and the shared gate, the events a job publishes and the relay that sends
them, and the job store where exactly one result is recorded."""
