"""Every Redis key and pub/sub channel name askq uses; nothing else spells one.

One package, one module per concern, all read through this one: ``from common import keys`` then
``keys.job_record(...)``, whichever module defines it. askq's own keys live under ``askq:``. arq's keys
(``arq:job:``, ``arq:in-progress:``, ``arq:retry:``, ``arq:result:``, ``arq:abort``) are fixed by arq
and re-exported by ``common.keys.queue`` so they too have one home. Each module lists its names in
``__all__``; tests/test_keys.py checks that every one is here and that no two modules use one name.
"""

# Star imports on purpose: this module is the index of the others, so that a call site never needs to
# know which concern a key belongs to. Each module's __all__ says exactly what comes through.
from common.keys.batch_api import *  # noqa: F403
from common.keys.cluster import *  # noqa: F403
from common.keys.events import *  # noqa: F403
from common.keys.jobs import *  # noqa: F403
from common.keys.knowledge import *  # noqa: F403
from common.keys.providers import *  # noqa: F403
from common.keys.queue import *  # noqa: F403
from common.keys.schedules import *  # noqa: F403
from common.keys.spend import *  # noqa: F403
