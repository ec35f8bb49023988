"""Scheduled summaries: the cron settings of the schedules worker, a run from claim to file, what a
run reads (answers or files), map-reduce over it (streamed, or the map step through the Batch API),
the run's record and the summary file."""
