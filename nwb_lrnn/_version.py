"""Package version (one place)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nwb-lrnn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0.dev0"
