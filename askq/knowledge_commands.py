"""The async bodies of ``askq knowledge build``, ``list`` and ``search``.

Building and searching embed through the provider, so they run the worker's code (``worker.knowledge``)
here in the command's process, imported when used (the provider's client takes most of a second to
load); the listing only reads Redis (``producer.knowledge``).
"""

from __future__ import annotations

import json

from askq.knowledge_view import bases_table, build_bar, report_lines, search_lines
from askq.terminal import json_line, make_console
from common.config import DEFAULT_CONFIG_FILE, AskqConfig, config_path, load_config
from common.errors import ConfigError
from common.knowledge import known_base
from common.knowledge_files import check_knowledge_files
from common.logs import configure_logging
from producer.connection import connect
from producer.knowledge import knowledge_rows

stdout = make_console()
stderr = make_console(stderr=True)


async def build(name: str, *, as_json: bool) -> int:
    config = _config()
    base = known_base(config.knowledge, name)
    # Only this base's files are needed: another base's missing folder is no reason to refuse it.
    problem = check_knowledge_files(config.root, {name: base})
    if problem is not None:
        raise ConfigError(f"{config_path() or DEFAULT_CONFIG_FILE}: {problem}")
    configure_logging(json=as_json)  # retries are logged on stderr, never into the report on stdout
    from worker.knowledge.build import build_base  # the provider's client: loaded when it is used

    async with connect() as redis:
        with build_bar(stderr, name, show=not as_json) as progress:
            report = await build_base(redis, config, name, progress)
    if as_json:
        print(json_line(json.dumps(report.to_json(), ensure_ascii=False)))
    else:
        print("\n".join(report_lines(report)))
    return 0


async def list_bases(*, as_json: bool) -> int:
    config = _config()
    async with connect() as redis:
        rows = await knowledge_rows(redis, config)
    if as_json:
        print(json_line(json.dumps([row.to_json() for row in rows], ensure_ascii=False)))
    elif not rows:
        stderr.print("no knowledge bases: jobs.yaml has no knowledge: section (see docs/knowledge.md)")
    else:
        stdout.print(bases_table(rows))
    return 0


async def search(name: str, question: str, *, k: int, as_json: bool) -> int:
    config = _config()
    known_base(config.knowledge, name)  # before loading the provider's client
    configure_logging(json=as_json)
    from worker.knowledge.search import search_base

    async with connect() as redis:
        meta, found = await search_base(redis, config, name, question, k)
    if as_json:
        document = {
            "name": meta.name,
            "version": meta.version,
            "model": meta.model,
            "question": question,
            "hits": [hit.to_json() for hit in found],
        }
        print(json_line(json.dumps(document, ensure_ascii=False)))
    else:
        print("\n".join(search_lines(meta, question, found)))
    return 0


def _config() -> AskqConfig:
    """jobs.yaml, its knowledge folders unchecked: list and search read Redis, build checks its own."""
    return load_config()
