"""Reading HDF5 files made by someone else without trusting them.

An HDF5 file can point outside itself: an *external link* names another file (opened when the
link is traversed), *external storage* keeps a dataset's bytes in any file on the reader's disk
(a secret, a FIFO that blocks forever), and a *virtual dataset* maps other files' datasets in.
A dataset can also declare a shape far beyond what it stores (unallocated chunks read as fill
values; a compressed chunk can expand a thousandfold), and a JSON attribute can nest deeply
enough to exhaust the parser's stack. h5py follows and reads all of these silently.

The helpers here resolve every link on a path one component at a time and refuse, by default,
anything that leaves the file; check a dataset's storage before any byte is read; check the
declared size against the memory available before allocating; and parse JSON with size and
depth limits. Every refusal is an ``error`` (the caller's exception class) whose message names
the file, the object and what was expected. Reading only what is used keeps remote reads
cheap: nothing here walks a whole file.
"""

from __future__ import annotations

import json
import os
from typing import Any

# declared bytes allowed per stored byte (plus MIN_DECLARED): compressed numeric data rarely
# exceeds 20:1; a larger claim is unallocated fill values or a compression bomb
MAX_EXPANSION = 1024
MIN_DECLARED = 1 << 20
MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
MAX_SOFT_HOPS = 16

_MISSING = object()


def memory_available() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _where(obj, name: str) -> str:
    base = obj.name.rstrip("/")
    return f"{base}/{name}" if name else (base or "/")


def get(group, name: str, *, label: str, error: type[Exception],
        allow_external: bool = False, default: Any = _MISSING, _hops: list | None = None):
    """``group[name]``, resolving each link on the path inside this file only.

    Hard links are followed; a soft link is resolved by its path, checked the same way (at
    most ``MAX_SOFT_HOPS`` in a row); an external link or a user-defined link is an ``error``
    unless ``allow_external``. A missing component returns ``default`` (an ``error`` when none
    is given).
    """
    import h5py

    hops = [0] if _hops is None else _hops  # one budget for the whole lookup, as HDF5's own
    if hops[0] > MAX_SOFT_HOPS:
        raise error(f"{label}: resolving {_where(group, name)} takes more than {MAX_SOFT_HOPS} "
                    "soft links (a cycle, or a crafted chain); refused.")
    obj = group
    parts = [p for p in name.split("/") if p]
    if name.startswith("/"):
        obj = group.file
    for i, part in enumerate(parts):
        if not isinstance(obj, h5py.Group):
            raise error(f"{label}: {obj.name} is a dataset, not a group, so it has no "
                        f"{'/'.join(parts[i:])!r}.")
        try:
            link = obj.get(part, getlink=True)
        except (KeyError, OSError, RuntimeError, TypeError, ValueError) as err:
            raise error(f"{label}: the link {_where(obj, part)} cannot be read ({err}).") from None
        if link is None:
            if default is not _MISSING:
                return default
            raise error(f"{label} has no {_where(obj, part)}.")
        if isinstance(link, h5py.HardLink):
            target = obj[part]
        elif isinstance(link, h5py.SoftLink):
            hops[0] += 1
            target = get(obj, link.path, label=label, error=error,
                         allow_external=allow_external, default=default, _hops=hops)
            if target is default:
                return default
        elif isinstance(link, h5py.ExternalLink):
            if not allow_external:
                raise error(f"{label}: {_where(obj, part)} is an external link to "
                            f"{link.filename!r} ({link.path}); links out of a file are not "
                            "followed unless allow_external=True is given.")
            target = obj[part]
        else:
            raise error(f"{label}: {_where(obj, part)} is a user-defined link "
                        f"({type(link).__name__}); only hard and soft links are read.")
        obj = target
    return obj


def contains(group, name: str, **kw) -> bool:
    """Whether ``group`` has ``name`` (checked link by link like :func:`get`)."""
    return get(group, name, default=None, **kw) is not None


def check_dataset(ds, *, label: str, error: type[Exception], allow_external: bool = False):
    """Refuse a dataset that stores its bytes outside the file or declares far more than it
    stores; return it unchanged otherwise. Reads metadata only."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise error(f"{label}: {ds.name} is a {type(ds).__name__}, expected a dataset.")
    try:
        plist = ds.id.get_create_plist()
        n_external = plist.get_external_count()
        virtual = plist.get_layout() == h5py.h5d.VIRTUAL
    except (OSError, RuntimeError, ValueError) as err:
        raise error(f"{label}: the dataset {ds.name} cannot be inspected ({err}).") from None
    if (n_external or virtual) and not allow_external:
        what = ("keeps its bytes in external file(s)" if n_external
                else "is a virtual dataset mapping other files")
        raise error(f"{label}: the dataset {ds.name} {what}; data outside the file is not read "
                    "unless allow_external=True is given.")
    if not virtual:
        declared = _declared_bytes(ds)
        stored = int(ds.id.get_storage_size())
        if declared > MIN_DECLARED + MAX_EXPANSION * stored:
            raise error(f"{label}: the dataset {ds.name} declares shape {ds.shape} "
                        f"({_fmt(declared)}) but stores {_fmt(stored)}; a file that expands "
                        f"more than {MAX_EXPANSION}x is refused (corrupt or crafted).")
    return ds


def _declared_bytes(ds) -> int:
    n = 1
    for s in ds.shape or ():
        n *= int(s)
    return n * int(ds.dtype.itemsize)


def _fmt(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def read(ds, *, label: str, error: type[Exception], allow_external: bool = False,
         max_bytes: int | None = None, max_elements: int | None = None):
    """All of ``ds`` as a NumPy array (or scalar), after :func:`check_dataset` and a check that
    its size — counted at 8 bytes per element at least, what it becomes as float64 — fits
    ``max_bytes`` and half the memory available now, and that it has at most
    ``max_elements`` elements."""
    check_dataset(ds, label=label, error=error, allow_external=allow_external)
    n = 1
    for d in ds.shape or ():
        n *= int(d)
    if max_elements is not None and n > max_elements:
        raise error(f"{label}: the dataset {ds.name} has {n} elements, more than the "
                    f"{max_elements} expected for it; refused.")
    declared = n * max(int(ds.dtype.itemsize), 8)
    avail = memory_available()
    limits = [x for x in (max_bytes, avail // 2 if avail else None) if x is not None]
    limit = min(limits) if limits else None
    if limit is not None and declared > limit:
        raise error(f"{label}: the dataset {ds.name} declares shape {ds.shape} "
                    f"({_fmt(declared)}), more than the {_fmt(limit)} allowed for it here.")
    return ds[()]


def loads_json(raw: Any, *, label: str, field: str, error: type[Exception],
               max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON text read from a file, refusing texts over ``max_bytes`` or nested deeper
    than ``max_depth``."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise error(f"{label}: {field} is not UTF-8 text ({err}).") from None
    if not isinstance(raw, str):
        raise error(f"{label}: {field} should be a JSON text, found {type(raw).__name__}.")
    if len(raw) > max_bytes:
        raise error(f"{label}: {field} is {_fmt(len(raw))} of JSON, more than the "
                    f"{_fmt(max_bytes)} accepted.")
    # a cheap bound before parsing: the nesting depth cannot exceed the number of openers
    if raw.count("[") + raw.count("{") > max_depth and _depth(raw) > max_depth:
        raise error(f"{label}: {field} nests deeper than {max_depth} levels; refused.")
    try:
        return json.loads(raw)
    except RecursionError:  # pragma: no cover - _depth caught it first
        raise error(f"{label}: {field} nests too deeply to parse.") from None
    except ValueError as err:
        raise error(f"{label}: {field} is not valid JSON ({err}).") from None


def _depth(text: str) -> int:
    """Largest bracket nesting of a JSON text, strings skipped (one linear pass)."""
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
        elif ch in "]}":
            depth -= 1
    return best


def check_file(f, *, label: str, error: type[Exception], allow_external: bool = False,
               max_links: int = 1_000_000) -> None:
    """Refuse a whole open file that points outside itself anywhere (external or user-defined
    links, external storage, virtual datasets). For files handed whole to a library that reads
    everything it finds (pynwb); reads metadata only, at most ``max_links`` links."""
    import h5py

    if allow_external:
        return
    bad: list[str] = []
    count = [0]

    def link(name):
        count[0] += 1
        if count[0] > max_links:
            raise error(f"{label} holds more than {max_links} links; refused.")
        lnk = f.get(name, getlink=True)
        if isinstance(lnk, h5py.ExternalLink):
            bad.append(f"/{name} is an external link to {lnk.filename!r}")
        elif not isinstance(lnk, (h5py.HardLink, h5py.SoftLink)):
            bad.append(f"/{name} is a user-defined link")
        return bad[0] if bad else None

    def obj(name, o):
        if isinstance(o, h5py.Dataset):
            try:
                check_dataset(o, label=label, error=error)
            except error as err:
                bad.append(str(err).removeprefix(f"{label}: "))
                return True
        return None

    f.visit_links(link)
    if not bad:
        f.visititems(obj)
    if bad:
        raise error(f"{label}: {bad[0]}; data outside the file is not read unless "
                    "allow_external=True is given.")
