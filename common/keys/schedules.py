"""Scheduled summaries: a schedule's last run, its claimed fire times, its history and file digests."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "schedule_cron",
    "schedule_files",
    "schedule_fire",
    "schedule_history",
    "schedule_of_cron_job",
    "schedule_record",
]


def schedule_record(name: str) -> str:
    """Hash of a schedule's last run: its state, fire time, output path."""
    return f"{PREFIX}:schedule:{name}"


def schedule_cron(name: str) -> str:
    """arq's name for the schedule's cron job; arq's job id for a fire is this, ':', the fire's unix ms."""
    return f"cron:schedule:{name}"


def schedule_of_cron_job(arq_job_id: str) -> tuple[str, int]:
    """(schedule name, fire unix ms) from arq's id for a cron fire of ``schedule_cron(name)``."""
    name, _, fire_ms = arq_job_id.removeprefix(schedule_cron("")).rpartition(":")
    return name, int(fire_ms)


def schedule_fire(name: str, fire_ms: int) -> str:
    """String naming the run that claimed this fire time: each tick runs once, however many workers."""
    return f"{PREFIX}:schedule:{name}:fire:{fire_ms}"


def schedule_history(name: str) -> str:
    """List of the schedule's finished runs as JSON, newest first."""
    return f"{PREFIX}:schedule:{name}:runs"


def schedule_files(name: str) -> str:
    """Hash of file path to content digest as of the schedule's last successful run (``files`` sources)."""
    return f"{PREFIX}:schedule:{name}:files"
