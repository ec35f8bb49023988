"""The ``askq`` command line and the local stack it can start (embedded Redis, simulator, worker)."""
