"""``askq serve``: askq over HTTP. The askq API (``/api``), the OpenAI Batch API (``/v1``), live
events over SSE and metrics, on FastAPI. A producer-side program: it talks to Redis only and never
imports the worker, so any number of servers run beside any number of workers."""
