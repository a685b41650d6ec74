"""eegmamba: the EEGMamba toolkit's command line, dataset registry, preprocessing, training and prediction."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("eegmamba")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"


_API = ("from_pretrained", "EEGMambaModel", "CacheDataset")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The Python API (api.py), imported on first use: `import eegmamba_cli` alone, as the CLI does at
    start-up, loads neither torch nor MNE."""
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
