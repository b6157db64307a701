"""Keep Python's cyclic garbage collector off the service's startup heap.

After the lifespan has opened the state, the process holds a few hundred thousand objects
that live as long as it does: imported modules, FastAPI's routes, pydantic validators,
SQLAlchemy's compiled statements, the Sigstore trust root, OPA's client. Each full
collection walked all of them again. Under load a decision allocates enough to set off
collections often, and the collection's cost landed on whichever request happened to be
allocating (mostly ``json.loads`` of a request body). At 16 clients, alternated runs:
347-408 decisions/s and a p99 of 100-132 ms without, 386-437/s and 55-64 ms with
(docs/benchmarks.md, round 4).

``gc.freeze()`` moves every object alive at that moment to a permanent generation that
collections skip; objects made later are collected as before, so cycles made per request
are still freed. The lifespan unfreezes on shutdown, so a process that runs apps one after
another (the tests) does not keep every earlier app's objects forever.

Frozen objects are still freed by reference counting; only a reference cycle among them
waits for shutdown. What the startup made and later dropped in a cycle (the managed OPA's
client objects after a bundle reload replaced them: a few kilobytes per reload) stays
until then.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every live object from later collections; their count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Return the frozen objects to the collector (at shutdown)."""
    gc.unfreeze()
