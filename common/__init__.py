"""What producer and worker agree on: config model, Redis keys, job payloads and stream events.

This package imports neither side; both import it.
"""
