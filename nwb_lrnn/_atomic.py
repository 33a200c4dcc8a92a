"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

One helper for the package's small writes (checkpoints, block caches, downloads, sweep
summaries): a reader never sees a partial file, and a failure leaves the target untouched
and no temporary file behind. NWB results files use :mod:`nwb_lrnn.io.fit_nwb`'s writer, which
adds locking, a forked writer and stale-file cleanup on top of the same idea.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write_bytes"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, prefix: str | None = None, suffix: str = ".part",
                fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file opened beside ``path`` that replaces ``path`` when the block ends without
    error (``fsync``: flushed to disk first) and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.",
                               suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, **kwargs) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, **kwargs) as fh:
        fh.write(data)
