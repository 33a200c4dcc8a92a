"""Read NWB sessions of a DANDI dandiset, streamed with HTTP range requests.

Assets are resolved with the official client (``dandi.dandiapi.DandiAPIClient``) and read
with :func:`nwb_lrnn.io.read_nwb` through :func:`nwb_lrnn.io.remote.open_url`, so only the
Units table (and the trials table) is transferred, not the raw data.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
import posixpath
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..data import BinnedData
from . import remote
from .remote import RemoteReadError

__all__ = ["DandiAsset", "default_cache_dir", "parse_dandiset", "read_dandi", "read_dandi_asset",
           "resolve_dandi"]

DEFAULT_API_URL = "https://api.dandiarchive.org/api"
_GLOB_CHARS = set("*?[")
_ID_RE = re.compile(
    r"^(?:(?:https?://[^/]+/dandiset/)|(?:DANDI:))?(\d{6})(?:/([^/?#]+))?/?(?:[/?#].*)?$",
    re.IGNORECASE)


def default_cache_dir() -> Path:
    """``$NWB_LRNN_CACHE`` if set, else ``~/.cache/nwb_lrnn``.

    Examples
    --------
    >>> default_cache_dir().name in ("nwb_lrnn", os.environ.get("NWB_LRNN_CACHE", ""))
    True
    """
    env = os.environ.get("NWB_LRNN_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/nwb_lrnn").expanduser()


def parse_dandiset(dandiset: str) -> tuple[str, str | None]:
    """Split a dandiset reference into (six-digit id, version or None).

    Examples
    --------
    >>> parse_dandiset("DANDI:000128/0.220113.0408")
    ('000128', '0.220113.0408')
    >>> parse_dandiset("https://dandiarchive.org/dandiset/000128")
    ('000128', None)
    """
    if not isinstance(dandiset, str):
        raise TypeError(f"dandiset must be a str, got {type(dandiset).__name__}.")
    m = _ID_RE.match(dandiset.strip())
    if not m:
        raise ValueError(
            f"{dandiset!r} is not a dandiset reference; expected '000128', 'DANDI:000128', "
            "'DANDI:000128/0.220113.0408', 'https://dandiarchive.org/dandiset/000128[/VERSION]' "
            "or a local folder made by `dandi download`.")
    version = m.group(2)
    if version is not None and version.lower() in ("files", "draft"):
        version = "draft" if version.lower() == "draft" else None
    return m.group(1), version


def _safe_path(p: str, what: str = "asset path") -> str:
    """Reject paths that could escape a folder ('..', absolute, drive letters)."""
    s = str(p).replace("\\", "/")
    if (not s or s.startswith("/") or re.match(r"^[A-Za-z]:", s)
            or ".." in s.split("/") or "\x00" in s):
        raise ValueError(f"unsafe {what} {p!r}: it must be relative and must not contain "
                         "'..' (it could escape the cache folder).")
    return s


def _download_path(cache: Path, ident: str, version: str, asset_path: str) -> Path:
    root = (cache / "dandi").resolve()
    target = (root / _safe_path(ident, "dandiset id") / _safe_path(version, "version")
              / _safe_path(asset_path)).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"unsafe asset path {asset_path!r}: it escapes {root}.")
    return target


def _is_glob(p: str) -> bool:
    return any(c in p for c in _GLOB_CHARS)


def _no_match(asset: str, paths: list[str], where: str) -> ValueError:
    close = difflib.get_close_matches(asset, paths, n=5, cutoff=0.4)
    if not close and paths:
        close = sorted(paths)[:5]
    hint = f" Close matches: {', '.join(close)}." if close else " It has no NWB assets."
    return ValueError(f"no NWB asset matches {asset!r} in {where}.{hint}")


# ------------------------------------------------------------------ remote
def _check_reachable(api_url: str, timeout: float = 10.0) -> None:
    """One quick request, no retries: the dandi client would retry for minutes."""
    import requests

    url = api_url.rstrip("/") + "/info/"
    try:
        r = requests.get(url, timeout=timeout)
    except requests.RequestException as err:
        raise RemoteReadError(f"cannot reach the DANDI API at {api_url} "
                              f"({type(err).__name__}: {err}).") from None
    if r.status_code >= 400:
        raise RemoteReadError(f"the DANDI API at {api_url} answered HTTP {r.status_code} "
                              f"to {url}; is api_url right?")


def _remote_assets(ident: str, version: str | None, asset: str | None, api_url: str | None):
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError

    _check_reachable(api_url or DEFAULT_API_URL)
    token = _token()
    try:
        client = (DandiAPIClient(api_url=api_url, token=token) if api_url
                  else DandiAPIClient(token=token))
    except Exception as err:  # the dandi client checks a token at once (HTTP errors)
        import requests

        if not isinstance(err, (RuntimeError, requests.RequestException)):
            raise
        hint = " (the token in DANDI_API_KEY was refused)" if token else ""
        raise RemoteReadError(f"cannot use the DANDI API at {api_url}: {err}{hint}") from None
    where = f"dandiset {ident}" + (f" version {version}" if version else "")
    try:
        ds = client.get_dandiset(ident, version, lazy=False)
        if asset is not None and not _is_glob(asset):
            try:
                found = [ds.get_asset_by_path(asset)]
            except NotFoundError:
                found = []
        elif asset is not None:
            found = list(ds.get_assets_by_glob(asset))
        else:
            found = list(ds.get_assets())
        found = [a for a in found if a.path.lower().endswith(".nwb")]
        if not found:
            paths = [a.path for a in ds.get_assets() if a.path.lower().endswith(".nwb")]
            raise _no_match(asset or "*.nwb", paths, where)
    except NotFoundError as err:
        raise ValueError(f"DANDI {where} not found on {client.api_url}: {err}") from None
    except Exception as err:
        import requests

        if isinstance(err, requests.RequestException):
            status = getattr(getattr(err, "response", None), "status_code", None)
            hint = ""
            if status in (401, 403):
                hint = (" — an embargoed dandiset needs your DANDI API token: set DANDI_API_KEY"
                        if not _token() else " — the token in DANDI_API_KEY was refused")
            raise RemoteReadError(f"DANDI API request for {where} at {client.api_url} "
                                  f"failed: {err}{hint}") from None
        raise
    for a in found:
        _safe_path(a.path)
    return client, ds, sorted(found, key=lambda a: a.path)


def _token() -> str | None:
    """The DANDI API token from ``DANDI_API_KEY`` (needed for embargoed dandisets)."""
    key = os.environ.get("DANDI_API_KEY", "").strip()
    return key or None


def _auth_headers() -> dict[str, str]:
    key = _token()
    return {"Authorization": f"token {key}"} if key else {}


def _digest(a) -> dict:
    try:
        d = a.get_raw_metadata().get("digest") or {}
    except Exception:  # metadata is optional for provenance
        return {}
    return {k: v for k, v in d.items() if k in ("dandi:sha2-256", "dandi:dandi-etag")}


# ------------------------------------------------------------------ local folder
def _local_assets(folder: Path, asset: str | None):
    if not (folder / "dandiset.yaml").is_file():
        raise ValueError(f"{folder} is not a `dandi download` folder (no dandiset.yaml).")
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.nwb")
                   if p.is_file())
    if asset is None:
        found = paths
    elif _is_glob(asset):
        found = [p for p in paths if fnmatch.fnmatchcase(p, asset)]
    else:
        a = posixpath.normpath(asset)
        found = [p for p in paths if p == a]
    if not found:
        raise _no_match(asset or "*.nwb", paths, str(folder))
    meta = _read_yaml(folder / "dandiset.yaml")
    ident = str(meta.get("identifier", folder.name)).replace("DANDI:", "")
    return ident, meta.get("version"), found


def _read_yaml(path: Path) -> dict:
    try:
        import yaml

        out = yaml.safe_load(path.read_text())
        return out if isinstance(out, dict) else {}
    except Exception:  # the metadata file is only used for provenance
        return {}


# ------------------------------------------------------------------ merging
def _merge(items: list[BinnedData]) -> BinnedData:
    first = items[0]
    for d in items[1:]:
        if d.n_channels != first.n_channels:
            raise ValueError(
                "merge=True needs the same number of units in every session; got "
                + ", ".join(f"{x.provenance.get('asset_path', '?')}: {x.n_channels}"
                            for x in items) + ". Select units with `units=`/`unit_filter=`.")
        if d.n_time != first.n_time or d.bin_size != first.bin_size or d.kind != first.kind:
            raise ValueError("merge=True needs the same bin_size and trial length in every "
                             "session (use align_to= and window=); got shapes "
                             + ", ".join(str(x.shape) for x in items) + ".")
    keys = set(first.trials)
    for d in items[1:]:
        keys &= set(d.trials)
    trials = {k: np.concatenate([np.asarray(d.trials[k]) for d in items]) for k in sorted(keys)}
    trials["session"] = np.concatenate(
        [np.full(d.n_trials, str(d.provenance.get("asset_path", i)))
         for i, d in enumerate(items)])
    inputs = None
    if all(d.inputs is not None for d in items):
        inputs = np.concatenate([d.inputs for d in items], axis=0)
    prov = {k: v for k, v in first.provenance.items()
            if all(d.provenance.get(k) == v for d in items)}
    prov["merged_sessions"] = [d.provenance for d in items]
    locs = first.channel_locations
    if locs is not None and not all(d.channel_locations is not None
                                    and np.array_equal(d.channel_locations, locs,
                                                       equal_nan=True) for d in items):
        locs = None
    same_ids = all(np.array_equal(d.channel_ids, first.channel_ids) for d in items)
    return first.replace(
        values=np.concatenate([d.values for d in items], axis=0),
        inputs=inputs, start_times=np.concatenate([d.start_times for d in items]),
        trials=trials, provenance=prov, channel_locations=locs,
        channel_ids=first.channel_ids if same_ids else None,
        channel_names=first.channel_names if same_ids else None)


# ------------------------------------------------------------------ public
@dataclasses.dataclass(frozen=True)
class DandiAsset:
    """One NWB asset of a dandiset, resolved through the DANDI API (plain values only).

    What a task needs to read the asset with no further API request: hand these to workers
    instead of the dandiset's name (:func:`read_dandi_asset`).

    Attributes
    ----------
    dandiset, version : str
        Six-digit identifier and the resolved version (``draft`` or a published one).
    path : str
        The asset's path in the dandiset.
    asset_id : str
    url : str
        The archive's download URL of the asset (its redirect to storage is followed, and
        renewed, by the reader).
    digest : dict
        ``dandi:sha2-256`` and/or ``dandi:dandi-etag`` from the asset's metadata.
    api_url : str
    size : int or None
        Bytes, when the API gave it.
    """

    dandiset: str
    version: str
    path: str
    asset_id: str
    url: str
    digest: dict
    api_url: str
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DandiAsset:
        """Inverse of :meth:`to_dict`, checked (a dict from elsewhere is not trusted)."""
        if not isinstance(d, dict):
            raise TypeError(f"a DandiAsset record must be a dict, got {type(d).__name__}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown DandiAsset fields {sorted(unknown)}.")
        for key in ("dandiset", "version", "path", "asset_id", "url", "api_url"):
            if not isinstance(d.get(key), str):
                raise ValueError(f"DandiAsset field {key!r} must be a str, got "
                                 f"{d.get(key)!r:.60}.")
        if not d["url"].startswith(("https://", "http://")):
            raise ValueError(f"DandiAsset url must be http(s), got {d['url']!r:.80}.")
        _safe_path(d["path"])
        return cls(**{**d, "digest": dict(d.get("digest") or {})})


def resolve_dandi(dandiset: str, *, asset: str | None = None, version: str | None = None,
                  api_url: str | None = None) -> list[DandiAsset]:
    """The NWB assets of a dandiset (or those ``asset`` names or globs), resolved once.

    Parameters
    ----------
    dandiset, asset, version, api_url
        As for :func:`read_dandi`.

    Returns
    -------
    list of DandiAsset, in asset-path order

    Raises
    ------
    ValueError, RemoteReadError
        As :func:`read_dandi`.

    Examples
    --------
    >>> assets = resolve_dandi("DANDI:000140", asset="sub-*/*.nwb")     # doctest: +SKIP
    >>> [read_dandi_asset(a, bin_size=0.02) for a in assets]           # doctest: +SKIP
    """
    if asset is not None:
        if not isinstance(asset, str):
            raise TypeError(f"asset must be a str, got {type(asset).__name__}.")
        _safe_path(asset)
    ident, v = parse_dandiset(str(dandiset))
    client, ds, assets = _remote_assets(ident, version or v, asset, api_url)
    out = []
    for a in assets:
        size = getattr(a, "size", None)
        out.append(DandiAsset(dandiset=ident, version=ds.version_id, path=a.path,
                              asset_id=a.identifier, url=a.base_download_url,
                              digest=_digest(a), api_url=client.api_url,
                              size=int(size) if isinstance(size, int) else None))
    return out


def read_dandi_asset(asset: DandiAsset | dict, *, bin_size: float,
                     cache_dir: str | os.PathLike | None = None, download: bool = False,
                     provenance: dict | None = None, **read_nwb_kwargs: Any) -> BinnedData:
    """Bin the Units of one resolved asset (:func:`resolve_dandi`), with no API request.

    Parameters
    ----------
    asset : DandiAsset or its ``to_dict()``
    bin_size, cache_dir, download, **read_nwb_kwargs
        As for :func:`read_dandi`.
    provenance : dict, optional
        Merged into the result's provenance.

    Returns
    -------
    BinnedData
        ``provenance`` holds ``dandiset``, ``version``, ``asset_path``, ``asset_id``,
        ``digest``, ``api_url`` and ``content_url``.
    """
    from .nwb import read_nwb

    a = asset if isinstance(asset, DandiAsset) else DandiAsset.from_dict(asset)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    headers = _auth_headers()
    if download:
        target = _download_path(cache, a.dandiset, a.version, a.path)
        remote.download(a.url, target, sha256=a.digest.get("dandi:sha2-256"), headers=headers)
        data = read_nwb(target, bin_size=bin_size, **read_nwb_kwargs)
    else:
        fobj = remote.open_url(a.url, cache_dir=cache, headers=headers)
        try:
            data = read_nwb(fobj, bin_size=bin_size, **read_nwb_kwargs)
        finally:
            fobj.close()
        data = data.replace(provenance={**data.provenance, "source": a.url})
    prov = {**data.provenance, **dict(provenance or {}), "dandiset": a.dandiset,
            "version": a.version, "asset_path": a.path, "asset_id": a.asset_id,
            "digest": dict(a.digest),
            # a streamed read touches a few blocks: the archive's digest describes the asset,
            # not bytes checked here; a download (download=True) is checked
            "digest_verified": bool(download and a.digest.get("dandi:sha2-256")),
            "api_url": a.api_url, "content_url": a.url}
    return data.replace(provenance=prov)


def read_dandi(dandiset: str | os.PathLike, *, asset: str | None = None,
               version: str | None = None, bin_size: float, api_url: str | None = None,
               cache_dir: str | os.PathLike | None = None, merge: bool = False,
               download: bool = False, **read_nwb_kwargs: Any) -> BinnedData | list[BinnedData]:
    """Bin the Units of NWB sessions of a DANDI dandiset, streamed (never downloaded whole).

    Parameters
    ----------
    dandiset : str or path
        ``"000128"``, ``"DANDI:000128"``, ``"DANDI:000128/0.220113.0408"``,
        ``"https://dandiarchive.org/dandiset/000128[/0.220113.0408]"``, or a local folder
        made by ``dandi download`` (holding ``dandiset.yaml``).
    asset : str, optional
        An asset path (``"sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"``)
        or a glob over asset paths (``"sub-*/*train*.nwb"``). Default: every NWB asset.
    version : str, optional
        Dandiset version (``"draft"`` or a published one); overrides one given in
        ``dandiset``. Default: the most recent published version, else the draft.
    bin_size : float
        Bin width in seconds.
    api_url : str, optional
        DANDI API base URL (default: the DANDI archive, ``https://api.dandiarchive.org/api``).
    cache_dir : path, optional
        Block cache for streamed files (and the folder of downloaded ones). Default
        ``$NWB_LRNN_CACHE`` or ``~/.cache/nwb_lrnn``.
    merge : bool
        Concatenate the sessions along trials (they need the same number of units and trial
        length); a ``session`` trials column names each trial's asset.
    download : bool
        Download each asset whole (atomically) to
        ``cache_dir/dandi/<id>/<version>/<asset path>`` and read it from disk, for servers
        without HTTP range support. Default: stream.
    **read_nwb_kwargs
        Passed to :func:`nwb_lrnn.io.read_nwb` (``units``, ``unit_filter``, ``time_range``,
        ``align_to``, ``window``, ``trial_filter``...).

    Returns
    -------
    BinnedData or list of BinnedData
        One BinnedData when exactly one asset matched (or ``merge=True``), else a list in
        asset-path order. ``provenance`` holds ``dandiset``, ``version``, ``asset_path``,
        ``asset_id``, ``digest`` and ``api_url``.

    Raises
    ------
    ValueError
        Malformed reference, unknown dandiset or version, no matching asset (the message
        lists close matches), unsafe asset path, sessions that cannot be merged.
    RemoteReadError
        The API or the file server cannot be reached, or does not support range requests.

    Examples
    --------
    >>> data = read_dandi("DANDI:000140/0.220113.0408", bin_size=0.02,
    ...                   asset="sub-Jenkins/*train*.nwb")                  # doctest: +SKIP
    >>> data.provenance["dandiset"], data.n_channels                         # doctest: +SKIP
    ('000140', 142)
    """
    from .nwb import read_nwb

    if asset is not None:
        if not isinstance(asset, str):
            raise TypeError(f"asset must be a str, got {type(asset).__name__}.")
        _safe_path(asset)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    user_prov = dict(read_nwb_kwargs.pop("provenance", None) or {})

    results: list[BinnedData] = []
    local = Path(os.fspath(dandiset)).expanduser()
    if isinstance(dandiset, os.PathLike) or (local.is_dir() and (
            (local / "dandiset.yaml").is_file() or not _ID_RE.match(str(dandiset)))):
        if not local.is_dir():
            raise FileNotFoundError(f"dandiset folder not found: {local}")
        ident, v, paths = _local_assets(local, asset)
        for p in paths:
            data = read_nwb(local / p, bin_size=bin_size, **read_nwb_kwargs)
            prov = {**data.provenance, **user_prov, "dandiset": ident,
                    "version": version or v, "asset_path": p, "asset_id": None,
                    "digest": {}, "api_url": None, "local_folder": str(local)}
            results.append(data.replace(provenance=prov))
    else:
        for a in resolve_dandi(str(dandiset), asset=asset, version=version, api_url=api_url):
            results.append(read_dandi_asset(a, bin_size=bin_size, cache_dir=cache,
                                            download=download, provenance=user_prov,
                                            **read_nwb_kwargs))
    if merge and len(results) > 1:
        return _merge(results)
    return results[0] if len(results) == 1 else results
