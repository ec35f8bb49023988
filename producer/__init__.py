"""The producer side: read question files, enqueue jobs, and read status, results and live events."""
