"""eegmamba: the EEGMamba toolkit's command line, dataset registry, preprocessing, training and prediction."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("eegmamba")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
