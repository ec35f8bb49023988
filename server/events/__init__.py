"""Live events over SSE: the hub that reads each event log once for all of a server's clients
(``hub``, ``reader``), the streams' SSE ids (``cursors``) and their events (``streams``)."""
