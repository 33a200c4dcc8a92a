"""A small DANDI-API-compatible HTTP server for the streaming tests and benchmarks.

It serves real NWB files with HTTP range support and implements the endpoints that
``dandi.dandiapi.DandiAPIClient`` calls to resolve assets (``/api/info/``, dandisets,
versions, paginated asset listings with ``path``/``glob``, asset metadata, the download
redirect). It counts the bytes served per file and has fault-injection switches.

Examples
--------
>>> with DandiServer() as srv:                                          # doctest: +SKIP
...     srv.add_dandiset("000128", {"sub-a/sub-a_ses-1.nwb": "file.nwb"})
...     client = DandiAPIClient(api_url=srv.api_url)
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

_NOW = datetime(2024, 1, 1, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
_DRAFT = "draft"


class _Asset:
    def __init__(self, dandiset: str, path: str, file: Path):
        self.dandiset = dandiset
        self.path = path
        self.file = Path(file)
        self.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{dandiset}/{path}"))
        self.blob = str(uuid.uuid5(uuid.NAMESPACE_URL, f"blob:{self.file.resolve()}"))
        self.size = self.file.stat().st_size
        h, m = hashlib.sha256(), hashlib.md5()
        with open(self.file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
                m.update(chunk)
        self.sha256 = h.hexdigest()
        self.etag = f"{m.hexdigest()}-1"

    def summary(self) -> dict:
        return {"asset_id": self.id, "blob": self.blob, "zarr": None, "path": self.path,
                "size": self.size, "created": _NOW, "modified": _NOW, "metadata": None}


class DandiServer:
    """DANDI-API-compatible server on 127.0.0.1 in a background thread.

    Attributes
    ----------
    url : str
        Base URL (``http://127.0.0.1:PORT``).
    api_url : str
        ``url + "/api"``, for ``DandiAPIClient(api_url=...)``.
    bytes_served : dict
        File body bytes sent, per served file (str path).
    no_range : bool
        Ignore ``Range`` and answer 200 with the whole body.
    drop_after : int or None
        Close the connection once this many more file-body bytes have been sent (for all
        later responses too, until reset to None).
    fail_next : int
        Answer the next ``fail_next`` file requests with 503.
    too_many_next : int
        Answer the next ``too_many_next`` file requests with 429 and ``Retry-After: 1``.
    storage_url : str
        With ``signed=True``: the second loopback server that file bodies come from; the
        download redirect points there with an expiring signature (``url_lifetime`` s), and
        an expired or altered signature is answered 403.
    token : str
        Embargoed dandisets (``add_dandiset(..., embargoed=True)``) need the header
        ``Authorization: token <token>`` on the API (401 without, 403 with a wrong one).
    headers_seen : list
        (port, path, Authorization header or None) of every request.

    Hostile behaviours (fault modes), each off by default:

    redirect_location : str or None
        The ``Location`` the download redirect sends instead of the file's URL (a local
        path, ``file://``, ``ftp://``, a relative URL).
    trickle_s : float or None
        Send file bodies one byte per ``trickle_s`` seconds (slow-loris), for at most 60 s.
    endless : bool
        File answers declare no length and send up to 512 MiB (or until the client leaves).
    claim_total : int or None
        Range answers claim this file size and a range running to its end (a 206 "of 1 TiB").
    tamper : bool
        Flip the bits of every 1000th body byte.
    """

    def __init__(self, *, signed: bool = False, url_lifetime: float = 300.0,
                 token: str = "test-token-123"):
        self.dandisets: dict[str, dict] = {}
        self.bytes_served: dict[str, int] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.headers_seen: list[tuple[int, str, str | None]] = []
        self.no_range = False
        self.drop_after: int | None = None
        self.fail_next = 0
        self.too_many_next = 0
        self.signed = signed
        self.url_lifetime = float(url_lifetime)
        self.token = token
        self.redirect_location: str | None = None
        self.trickle_s: float | None = None
        self.endless = False
        self.claim_total: int | None = None
        self.tamper = False
        self._secret = uuid.uuid4().hex.encode()
        self._storage: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ content
    def add_dandiset(self, identifier: str, assets: dict[str, str | os.PathLike], *,
                     version: str | None = "0.240101.0000", embargoed: bool = False) -> None:
        """Serve ``assets`` ({asset path: local file}) as draft and published ``version``;
        ``embargoed``: only to requests with the server's token."""
        items = {p: _Asset(identifier, p, f) for p, f in assets.items()}
        versions = [_DRAFT] + ([version] if version else [])
        self.dandisets[identifier] = {"assets": items, "versions": versions,
                                      "published": version, "embargoed": embargoed}

    def file_url(self, a: _Asset) -> str:
        """Where the download redirect sends a client (signed when ``signed``)."""
        if not self.signed:
            return f"{self.url}/files/{a.blob}/{quote(Path(a.path).name)}"
        expires = int(time.time() + self.url_lifetime)
        return (f"{self.storage_url}/files/{a.blob}/{quote(Path(a.path).name)}?"
                f"X-Expires={expires}&X-Signature={self._sign(a.blob, expires)}")

    def _sign(self, blob: str, expires: int) -> str:
        return hmac.new(self._secret, f"{blob}:{expires}".encode(), "sha256").hexdigest()[:32]

    def check_signature(self, blob: str, query: dict) -> str | None:
        """None when the signed query is valid now, else the reason."""
        try:
            expires = int(query.get("X-Expires", ""))
        except ValueError:
            return "missing signature"
        if not hmac.compare_digest(self._sign(blob, expires), query.get("X-Signature", "")):
            return "bad signature"
        if time.time() > expires:
            return "Request has expired"
        return None

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served.clear()
            self.requests.clear()

    def served(self, file) -> int:
        """Body bytes sent for a local file."""
        return self.bytes_served.get(str(Path(file).resolve()), 0)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DandiServer:
        server = self

        class Handler(_Handler):
            srv = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.storage_url = self.url
        if self.signed:  # a second host (another loopback port) for the file bodies
            self._storage = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self._storage.daemon_threads = True
            self.storage_url = f"http://127.0.0.1:{self._storage.server_address[1]}"
            threading.Thread(target=self._storage.serve_forever,
                             kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._storage is not None:
            self._storage.shutdown()
            self._storage.server_close()
            self._storage = None
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()
        self._httpd = None

    def __enter__(self) -> DandiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ JSON
    def version_json(self, d: str, v: str) -> dict:
        ds = self.dandisets[d]
        return {"version": v, "name": f"Test dandiset {d}",
                "asset_count": len(ds["assets"]),
                "size": sum(a.size for a in ds["assets"].values()),
                "created": _NOW, "modified": _NOW,
                "status": "Valid" if v == _DRAFT else "Published"}

    def dandiset_json(self, d: str) -> dict:
        ds = self.dandisets[d]
        pub = ds["published"]
        return {"identifier": d, "created": _NOW, "modified": _NOW,
                "contact_person": "Test, Person", "embargo_status": "OPEN",
                "most_recent_published_version": self.version_json(d, pub) if pub else None,
                "draft_version": self.version_json(d, _DRAFT)}

    def asset_metadata(self, a: _Asset) -> dict:
        return {
            "id": f"dandiasset:{a.id}", "identifier": a.id, "schemaKey": "Asset",
            "path": a.path, "contentSize": a.size, "encodingFormat": "application/x-nwb",
            "digest": {"dandi:dandi-etag": a.etag, "dandi:sha2-256": a.sha256},
            "contentUrl": [f"{self.api_url}/assets/{a.id}/download/",
                           f"{self.storage_url}/files/{a.blob}/{quote(Path(a.path).name)}"],
            "dateModified": _NOW, "blobDateModified": _NOW,
        }

    def find_asset(self, asset_id: str) -> _Asset | None:
        for ds in self.dandisets.values():
            for a in ds["assets"].values():
                if a.id == asset_id:
                    return a
        return None

    def find_blob(self, blob: str) -> _Asset | None:
        for ds in self.dandisets.values():
            for a in ds["assets"].values():
                if a.blob == blob:
                    return a
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv: DandiServer

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        with self.srv._lock:
            self.srv._sockets.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.srv._lock:
                self.srv._sockets.discard(self.connection)

    # ------------------------------------------------------------------ helpers
    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _not_found(self, what: str = "Not found.") -> None:
        self._json({"detail": what}, 404)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        parts = urlsplit(self.path)  # an absolute-form path (through a proxy) works too
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.srv._lock:
            self.srv.requests.append((self.command, path, parts.query))
            self.srv.headers_seen.append((self.server.server_address[1], self.path,
                                          self.headers.get("Authorization")))
        try:
            if path.startswith("/files/"):
                return self._file(path, query)
            if path == "/api/auth/token":  # the client checks its token here
                if self.headers.get("Authorization") == f"token {self.srv.token}":
                    return self._json(self.srv.token)
                return self._json({"detail": "Invalid token."}, 401)
            denied = self._embargo(path)
            if denied:
                return denied
            if path == "/api/info/":
                return self._json({
                    "version": "0.4.0", "schema_version": "0.6.9",
                    "schema_url": "https://example.org/schema",
                    "services": {"api": {"url": self.srv.api_url},
                                 "webui": {"url": self.srv.url},
                                 "jupyterhub": {"url": self.srv.url}},
                    "cli-minimal-version": "0.1.0", "cli-bad-versions": []})
            m = re.fullmatch(r"/api/assets/([^/]+)/download/", path)
            if m:
                a = self.srv.find_asset(m.group(1))
                if a is None:
                    return self._not_found()
                loc = self.srv.redirect_location or self.srv.file_url(a)
                return self._send(302, b"", "text/plain", {"Location": loc})
            m = re.fullmatch(r"/api/dandisets/(\d+)/(.*)", path)
            if m:
                return self._dandiset(m.group(1), m.group(2), query, parts.query)
            return self._not_found()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _embargo(self, path: str):
        """401/403 for an embargoed dandiset's API paths without the right token."""
        srv = self.srv
        m = re.fullmatch(r"/api/dandisets/(\d+)/.*", path)
        d = m.group(1) if m else None
        m = re.fullmatch(r"/api/assets/([^/]+)/download/", path)
        if m:
            a = srv.find_asset(m.group(1))
            d = a.dandiset if a is not None else None
        if d is None or not srv.dandisets.get(d, {}).get("embargoed"):
            return None
        auth = self.headers.get("Authorization")
        if auth is None:
            self._json({"detail": "Authentication credentials were not provided."}, 401)
            return True
        if auth != f"token {srv.token}":
            self._json({"detail": "Invalid token."}, 403)
            return True
        return None

    def _page(self, items: list, query: dict, raw_query: str) -> None:
        size = int(query.get("page_size", 100))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * size:page * size]
        nxt = None
        if page * size < len(items):
            q = {k: v for k, v in query.items() if k != "page"}
            q["page"] = page + 1
            nxt = f"{self.srv.url}{urlsplit(self.path).path}?{urlencode(q)}"
        prev = None if page == 1 else f"{self.srv.url}{urlsplit(self.path).path}"
        self._json({"count": len(items), "next": nxt, "previous": prev, "results": chunk})

    def _dandiset(self, d: str, rest: str, query: dict, raw_query: str) -> None:
        srv = self.srv
        ds = srv.dandisets.get(d)
        if ds is None:
            return self._not_found("No Dandiset matches the given query.")
        if rest == "":
            return self._json(srv.dandiset_json(d))
        if rest == "versions/":
            return self._page([srv.version_json(d, v) for v in ds["versions"]], query,
                              raw_query)
        m = re.fullmatch(r"versions/([^/]+)/(.*)", rest)
        if not m or m.group(1) not in ds["versions"]:
            return self._not_found("No Version matches the given query.")
        v, rest = m.groups()
        if rest == "":
            return self._json({"identifier": f"DANDI:{d}", "name": f"Test dandiset {d}",
                               "version": v, "schemaKey": "Dandiset",
                               "id": f"DANDI:{d}/{v}"})
        if rest == "info/":
            return self._json({**srv.version_json(d, v), "dandiset": srv.dandiset_json(d),
                               "asset_validation_errors": [],
                               "version_validation_errors": [],
                               "metadata": {"identifier": f"DANDI:{d}", "version": v}})
        assets = sorted(ds["assets"].values(), key=lambda a: a.path)
        if rest == "assets/":
            if "path" in query:
                p = query["path"]
                assets = [a for a in assets if a.path.startswith(p)]
            if "glob" in query:
                assets = [a for a in assets if fnmatch.fnmatchcase(a.path, query["glob"])]
            return self._page([a.summary() for a in assets], query, raw_query)
        m = re.fullmatch(r"assets/([^/]+)/", rest)
        if m:
            a = ds["assets"].get(next((p for p, x in ds["assets"].items()
                                       if x.id == m.group(1)), ""))
            if a is None:
                return self._not_found("No Asset matches the given query.")
            return self._json(srv.asset_metadata(a))
        return self._not_found()

    # ------------------------------------------------------------------ file bodies
    def _file(self, path: str, query: dict) -> None:
        srv = self.srv
        m = re.fullmatch(r"/files/([^/]+)/.*", path)
        a = srv.find_blob(m.group(1)) if m else None
        if a is None:
            return self._not_found()
        if srv.signed:
            reason = srv.check_signature(a.blob, query)
            if reason:
                return self._send(403, f"<Error>{reason}</Error>".encode(), "text/xml")
        with srv._lock:
            fail = srv.fail_next > 0
            if fail:
                srv.fail_next -= 1
            busy = srv.too_many_next > 0
            if busy:
                srv.too_many_next -= 1
        if fail:
            return self._send(503, b"Service Unavailable", "text/plain")
        if busy:
            return self._send(429, b"Too Many Requests", "text/plain", {"Retry-After": "1"})
        size = a.size
        rng = self.headers.get("Range")
        start, stop, status = 0, size, 200
        if rng and not srv.no_range:
            mm = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not mm or (mm.group(1) == "" and mm.group(2) == ""):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            if mm.group(1) == "":
                start, stop = max(size - int(mm.group(2)), 0), size
            else:
                start = int(mm.group(1))
                stop = min(int(mm.group(2)) + 1, size) if mm.group(2) else size
            if start >= size or stop <= start:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/x-nwb")
        self.send_header("Accept-Ranges", "none" if srv.no_range else "bytes")
        if srv.endless:
            self.close_connection = True
        elif srv.claim_total is not None and status == 206:
            self.send_header("Content-Length", str(srv.claim_total - start))
        else:
            self.send_header("Content-Length", str(stop - start))
        self.send_header("ETag", f'"{a.etag}"')
        if status == 206:
            if srv.claim_total is not None:
                self.send_header("Content-Range",
                                 f"bytes {start}-{srv.claim_total - 1}/{srv.claim_total}")
            else:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        if srv.endless:
            return self._endless()
        if srv.trickle_s is not None:
            return self._trickle(a, start, stop)
        key = str(a.file.resolve())
        with open(a.file, "rb") as fh:
            fh.seek(start)
            left = stop - start
            while left > 0:
                n = min(left, 1 << 16)
                with srv._lock:
                    if srv.drop_after is not None:
                        n = min(n, srv.drop_after)
                        srv.drop_after -= n
                if n <= 0:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                chunk = fh.read(n)
                if srv.tamper:
                    chunk = bytes(b ^ 0xFF if (start + (stop - start - left) + i) % 1000 == 0
                                  else b for i, b in enumerate(chunk))
                self.wfile.write(chunk)
                with srv._lock:
                    srv.bytes_served[key] = srv.bytes_served.get(key, 0) + len(chunk)
                left -= len(chunk)


    def _endless(self) -> None:
        """Send zeros (at most 512 MiB, at most 60 s) until the client hangs up."""
        block = b"\0" * (1 << 16)
        t0 = time.monotonic()
        for _ in range(8192):
            if time.monotonic() - t0 > 60:
                break
            try:
                self.wfile.write(block)
            except OSError:
                break
        self.close_connection = True

    def _trickle(self, a: _Asset, start: int, stop: int) -> None:
        """One byte per ``trickle_s`` seconds, for at most 60 s."""
        t0 = time.monotonic()
        with open(a.file, "rb") as fh:
            fh.seek(start)
            for _ in range(stop - start):
                if time.monotonic() - t0 > 60:
                    break
                try:
                    self.wfile.write(fh.read(1))
                    self.wfile.flush()
                except OSError:
                    break
                time.sleep(self.srv.trickle_s)
        self.close_connection = True


def make_dandi_folder(root: Path, dandiset: str, assets: dict[str, str | os.PathLike]) -> Path:
    """A folder laid out like ``dandi download`` output: dandiset.yaml + assets."""
    folder = Path(root) / dandiset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dandiset.yaml").write_text(
        f"identifier: DANDI:{dandiset}\nname: Test dandiset {dandiset}\nversion: draft\n")
    for p, f in assets.items():
        dst = folder / p
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)
    return folder
