"""Keep Python's cycle collector off the objects a run did not create.

A loaded model, its tokenizer and the imported libraries are several hundred thousand objects,
and every full collection of the cycle collector scans them all: a pause of a sizeable fraction
of a second whenever a run has allocated enough to trigger one. None of them becomes garbage
during a run.

`collect_new_objects_only()` sets every object that exists when a run starts aside from the
collector (`gc.freeze`) and gives them back when it ends (`gc.unfreeze`), so the collections
during the run scan only what the run allocates. Reference counting frees memory as usual; a
reference cycle that includes an object older than the run is collected after the run instead
of during it. Where something else has already frozen objects (an application preparing to
fork, or an enclosing run), nothing is changed.

On a GPU, where a run is the host's work, that pause is not hidden by the device. The
measurement is in benchmarks/README.md.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collect_new_objects_only() -> Iterator[None]:
    """Within the block, the cycle collector scans only objects created inside it (see the module docstring)."""
    if gc.get_freeze_count() > 0 or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
