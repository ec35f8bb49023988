"""Knowledge bases: their names, each base's current version, its data by version, its build lock."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "KNOWLEDGE_BASES",
    "knowledge_build_lock",
    "knowledge_data",
    "knowledge_meta",
    "knowledge_versions",
]

KNOWLEDGE_BASES = f"{PREFIX}:knowledge"
"""Set of the names of the knowledge bases built in this Redis (``askq knowledge list``)."""


def knowledge_meta(name: str) -> str:
    """Hash describing the base's current version (``common.knowledge.KnowledgeMeta``); never expires."""
    return f"{PREFIX}:knowledge:{name}"


def knowledge_data(name: str, version: int) -> str:
    """Hash of one version of a base: its matrix in segments, each chunk's text and the file table
    (``common.knowledge``). A version replaced by a rebuild expires a little later, so a worker
    loading it meanwhile finishes."""
    return f"{PREFIX}:knowledge:{name}:v{version}"


def knowledge_versions(name: str) -> str:
    """Counter of the base's versions: each build takes the next, so a worker's copy of an older one
    is never mistaken for the current."""
    return f"{PREFIX}:knowledge:{name}:versions"


def knowledge_build_lock(name: str) -> str:
    """String held while a build of the base runs: two builds at once would each replace the other's."""
    return f"{PREFIX}:knowledge:{name}:building"
