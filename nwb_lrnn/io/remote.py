"""Read remote files over HTTP(S) with range requests, without downloading them whole.

:func:`open_url` returns a read-only, seekable binary file object that fetches only the
blocks that are read (HTTP ``Range`` requests), with bounded retries and an optional
on-disk block cache; ``h5py.File(open_url(url), "r")`` then reads an NWB file's Units
table without transferring its (often much larger) raw data. :func:`download` fetches a
whole file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urljoin, urlsplit

__all__ = ["RemoteFile", "RemoteReadError", "download", "open_url"]

DEFAULT_BLOCK_SIZE = 64 * 1024
_MAX_REDIRECTS = 5
_MAX_BLOCKS_PER_REQUEST = 256
_MEMORY_CACHE_BYTES = 64 * 2**20
_USER_AGENT = "nwb_lrnn-remote/1"


class RemoteReadError(OSError):
    """A remote file cannot be read (unreachable, no range support, repeated failures)."""


class _Retryable(Exception):
    """A transient failure (connection error, 5xx, truncated body): try again."""


@contextlib.contextmanager
def _atomic_file(path: Path, prefix: str):
    """A binary file opened beside ``path`` that replaces ``path`` atomically when the block
    ends without error, and is removed otherwise (no partial file is ever left at ``path``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _check_url(url) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"only http(s) URLs can be opened, got {url!r}.")
    return url


def _cache_root(cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


class _Connection:
    """One persistent HTTP(S) connection per host, following redirects."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _get(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout)
            self._conns[key] = conn
        return conn

    def drop(self, scheme: str, netloc: str) -> None:
        conn = self._conns.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def request(self, method: str, url: str, headers: dict[str, str]):
        """Send a request; return ``(final_url, response)`` with the body still unread.

        Raises ``_Retryable`` for connection errors and 5xx answers, ``RemoteReadError``
        for other HTTP errors.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            for fresh in (False, True):
                reused = (parts.scheme, parts.netloc) in self._conns
                conn = self._get(parts.scheme, parts.netloc)
                try:
                    conn.request(method, path, headers={"User-Agent": _USER_AGENT, **headers})
                    resp = conn.getresponse()
                    break
                except (OSError, http.client.HTTPException) as err:
                    self.drop(parts.scheme, parts.netloc)
                    # a kept-alive connection the server closed meanwhile: reconnect at once
                    if reused and not fresh and isinstance(err, (
                            http.client.RemoteDisconnected, BrokenPipeError,
                            ConnectionResetError)):
                        continue
                    raise _Retryable(f"{type(err).__name__}: {err}") from None
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                resp.read()
                url = urljoin(url, resp.getheader("Location"))
                continue
            if resp.status >= 500 or resp.status == 429:
                resp.read()
                self.drop(parts.scheme, parts.netloc)
                raise _Retryable(f"HTTP {resp.status} {resp.reason}")
            if resp.status >= 400:
                resp.read()
                raise RemoteReadError(f"{url}: HTTP {resp.status} {resp.reason}.")
            return url, resp
        raise RemoteReadError(f"{url}: more than {_MAX_REDIRECTS} redirects.")


def _with_retries(fn, url: str, retries: int, what: str):
    """Call ``fn()``; retry ``_Retryable`` failures with exponential backoff."""
    attempts = max(int(retries), 0) + 1
    last = ""
    for k in range(attempts):
        try:
            return fn()
        except _Retryable as err:
            last = str(err)
            if k + 1 < attempts:
                time.sleep(min(0.25 * 2**k, 4.0))
    raise RemoteReadError(f"{what} {url} failed after {attempts} attempt(s); last error: {last}")


def _read_exact(resp, n: int) -> bytes:
    try:
        body = resp.read(n)
    except (OSError, http.client.HTTPException) as err:
        raise _Retryable(f"connection dropped while reading the body: {err}") from None
    if len(body) != n:
        raise _Retryable(f"connection dropped after {len(body)} of {n} bytes")
    return body


class RemoteFile(io.RawIOBase):
    """Read-only seekable file object over HTTP(S) range requests (see :func:`open_url`).

    Attributes
    ----------
    url : str
        The URL as given.
    size : int
        File size in bytes.
    bytes_read : int
        Bytes fetched over the network so far (response bodies; cache hits count 0).
    n_requests : int
        Ranged GET requests made so far (the preflight included).
    """

    def __init__(self, url: str, *, cache_dir=None, retries: int = 3, timeout: float = 30.0,
                 block_size: int = DEFAULT_BLOCK_SIZE):
        super().__init__()
        self.url = _check_url(url)
        if int(block_size) <= 0:
            raise ValueError(f"block_size must be positive, got {block_size!r}.")
        self.block_size = int(block_size)
        self.retries = int(retries)
        self.timeout = float(timeout)
        self.bytes_read = 0
        self.n_requests = 0
        self._pos = 0
        self._lock = threading.RLock()
        self._conn = _Connection(self.timeout)
        self._mem: OrderedDict[int, bytes] = OrderedDict()
        self._mem_max = max(_MEMORY_CACHE_BYTES // self.block_size, 4)
        self._cache: Path | None = None
        self._fetch_url = self.url
        try:
            self.size = self._preflight(_cache_root(cache_dir))
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ network
    def _preflight(self, root: Path | None) -> int:
        """Check that the server answers range requests with 206; learn the size."""

        def attempt():
            n = self.block_size
            final, resp = self._conn.request("GET", self.url, {"Range": f"bytes=0-{n - 1}"})
            self.n_requests += 1
            length = resp.getheader("Content-Length")
            if resp.status == 200 and length is not None and int(length) <= n:
                body = _read_exact(resp, int(length))  # a file smaller than one block
                self.bytes_read += len(body)
                return final, len(body), body, resp.getheader("ETag") or ""
            if resp.status != 206:
                parts = urlsplit(final)
                self._conn.drop(parts.scheme, parts.netloc)  # never read the whole body
                resp.close()
                raise RemoteReadError(
                    f"{self.url}: server does not support HTTP range requests (answered "
                    f"HTTP {resp.status} to a Range request instead of 206); pass "
                    "download=True to read_dandi (or use nwb_lrnn.io.download) to fetch the "
                    "whole file first.")
            m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.getheader("Content-Range") or "")
            if not m or m.group(3) == "*":
                resp.read()
                raise RemoteReadError(f"{self.url}: range response without a usable "
                                      "Content-Range header.")
            start, end, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
            body = _read_exact(resp, end - start + 1)
            self.bytes_read += len(body)
            return final, total, body, resp.getheader("ETag") or ""

        final, total, body, etag = _with_retries(attempt, self.url, self.retries, "reading")
        self._fetch_url = final
        if root is not None:
            key = hashlib.sha256(f"{self.url}\n{total}\n{etag}".encode()).hexdigest()[:32]
            self._cache = root / key / f"bs{self.block_size}"
            self._cache.mkdir(parents=True, exist_ok=True)
            meta = root / key / "meta.json"
            if not meta.exists():
                self._atomic_write(meta, json.dumps(
                    {"url": self.url, "size": total, "etag": etag}).encode())
        if len(body) == min(self.block_size, total):
            self._store(0, body, total)
        return total

    def _fetch_range(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) in one ranged GET, with retries."""

        def attempt():
            final, resp = self._conn.request(
                "GET", self._fetch_url, {"Range": f"bytes={start}-{stop - 1}"})
            self.n_requests += 1
            if resp.status != 206:
                parts = urlsplit(final)
                self._conn.drop(parts.scheme, parts.netloc)
                resp.close()
                raise RemoteReadError(f"{self.url}: server stopped honouring range requests "
                                      f"(HTTP {resp.status}).")
            body = _read_exact(resp, stop - start)
            self.bytes_read += len(body)
            return body

        return _with_retries(attempt, self.url, self.retries, "reading")

    # ------------------------------------------------------------------ block cache
    def _block_len(self, b: int, size: int | None = None) -> int:
        size = self.size if size is None else size
        return max(min(self.block_size, size - b * self.block_size), 0)

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        with _atomic_file(path, ".tmp-") as fh:
            fh.write(data)

    def _store(self, b: int, data: bytes, size: int | None = None) -> None:
        self._mem[b] = data
        self._mem.move_to_end(b)
        while len(self._mem) > self._mem_max:
            self._mem.popitem(last=False)
        if self._cache is not None:
            path = self._cache / f"{b:010d}.blk"
            if not path.exists():
                try:
                    self._atomic_write(path, data)
                except OSError:  # a full or read-only disk must not break reading
                    pass

    def _lookup(self, b: int) -> bytes | None:
        data = self._mem.get(b)
        if data is not None:
            self._mem.move_to_end(b)
            return data
        if self._cache is not None:
            try:
                data = (self._cache / f"{b:010d}.blk").read_bytes()
            except OSError:
                return None
            if len(data) == self._block_len(b):
                self._mem[b] = data
                while len(self._mem) > self._mem_max:
                    self._mem.popitem(last=False)
                return data
        return None

    def _blocks(self, b0: int, b1: int) -> list[bytes]:
        """Blocks b0..b1 inclusive; missing runs are fetched in as few requests as possible."""
        out: dict[int, bytes] = {}
        missing: list[int] = []
        for b in range(b0, b1 + 1):
            data = self._lookup(b)
            if data is None:
                missing.append(b)
            else:
                out[b] = data
        i = 0
        while i < len(missing):
            j = i
            while (j + 1 < len(missing) and missing[j + 1] == missing[j] + 1
                   and j + 1 - i < _MAX_BLOCKS_PER_REQUEST):
                j += 1
            first, last = missing[i], missing[j]
            start = first * self.block_size
            stop = last * self.block_size + self._block_len(last)
            body = self._fetch_range(start, stop)
            for b in range(first, last + 1):
                off = (b - first) * self.block_size
                out[b] = body[off:off + self._block_len(b)]
                self._store(b, out[b])
            i = j + 1
        return [out[b] for b in range(b0, b1 + 1)]

    # ------------------------------------------------------------------ file API
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = int(pos)
        return self._pos

    def readinto(self, buf) -> int:
        self._checkClosed()
        mv = memoryview(buf).cast("B")
        with self._lock:
            start = self._pos
            stop = min(start + len(mv), self.size)
            if stop <= start:
                return 0
            b0, b1 = start // self.block_size, (stop - 1) // self.block_size
            n = 0
            for b, data in zip(range(b0, b1 + 1), self._blocks(b0, b1), strict=True):
                base = b * self.block_size
                lo, hi = max(start, base) - base, min(stop, base + len(data)) - base
                mv[n:n + hi - lo] = data[lo:hi]
                n += hi - lo
            self._pos = start + n
            return n

    def read(self, size: int = -1) -> bytes:
        self._checkClosed()
        if size is None or size < 0:
            size = max(self.size - self._pos, 0)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._conn.close()
            self._mem.clear()
        super().close()

    def __repr__(self) -> str:
        return (f"RemoteFile({self.url!r}, size={getattr(self, 'size', '?')}, "
                f"bytes_read={self.bytes_read})")


def open_url(url: str, *, cache_dir=None, retries: int = 3, timeout: float = 30.0,
             block_size: int = DEFAULT_BLOCK_SIZE) -> RemoteFile:
    """Open an http(s) URL as a read-only, seekable binary file streamed with range requests.

    A preflight ranged GET checks that the server answers ``Range`` requests with
    ``206 Partial Content`` (the file is never silently downloaded whole) and learns the
    file size. Reads fetch whole blocks of ``block_size`` bytes; adjacent missing blocks
    are fetched in one request.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL.
    cache_dir : path, optional
        Keep fetched blocks on disk, in one folder per URL (hash) and file version. Blocks
        are written to a temporary file and renamed into place, so a dropped connection
        never leaves a partial block and concurrent readers are safe.
    retries : int
        Retries per request after a connection error, a timeout, a truncated body or an
        HTTP 5xx/429 answer (exponential backoff from 0.25 s).
    timeout : float
        Socket timeout in seconds.
    block_size : int
        Bytes per block (default 64 KiB).

    Returns
    -------
    RemoteFile
        With ``read``, ``readinto``, ``seek``, ``tell``, ``close``; a context manager.
        ``bytes_read`` counts the bytes fetched over the network.

    Raises
    ------
    ValueError
        Not an http(s) URL.
    RemoteReadError
        The server is unreachable, answers an error, ignores range requests, or keeps
        failing after ``retries`` retries.

    Examples
    --------
    >>> import h5py                                            # doctest: +SKIP
    >>> with open_url("https://example.org/file.nwb") as f:   # doctest: +SKIP
    ...     with h5py.File(f, "r") as h5:
    ...         n = h5["units/spike_times"].shape[0]
    ...     print(f.bytes_read < f.size)
    True
    """
    return RemoteFile(url, cache_dir=cache_dir, retries=retries, timeout=timeout,
                      block_size=block_size)


def download(url: str, path, *, overwrite: bool = False, retries: int = 3,
             timeout: float = 60.0) -> Path:
    """Download a whole file atomically (temporary file, then rename).

    Parameters
    ----------
    url : str
        An http(s) URL.
    path : path
        Destination file; its folder is created.
    overwrite : bool
        Replace an existing file (default: keep it and return at once).
    retries : int
        Retries after connection errors, truncated bodies and 5xx answers.
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    Path
        The destination.

    Examples
    --------
    >>> download("https://example.org/file.nwb", "data/file.nwb")  # doctest: +SKIP
    PosixPath('data/file.nwb')
    """
    _check_url(url)
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _Connection(timeout)

    def attempt():
        _, resp = conn.request("GET", url, {})
        length = resp.getheader("Content-Length")
        try:
            with _atomic_file(path, f".{path.name}.") as fh:
                n = 0
                while True:
                    try:
                        chunk = resp.read(1 << 20)
                    except (OSError, http.client.HTTPException) as err:
                        raise _Retryable(f"connection dropped after {n} bytes: {err}") from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    n += len(chunk)
                if length is not None and n != int(length):
                    raise _Retryable(f"connection dropped after {n} of {length} bytes")
        except BaseException:
            conn.close()
            raise

    try:
        _with_retries(attempt, url, retries, "downloading")
    finally:
        conn.close()
    return path
