"""Errors that carry one user-facing sentence and a documented exit code.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``; the Python API
raises the same exceptions, so scripts can catch them by class.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NPU_NOT_READY = 3
EXIT_MODEL = 4
EXIT_IMAGE = 5
EXIT_LABELS = 6
EXIT_BACKEND = 7
EXIT_RUNTIME = 8
EXIT_OUTPUT = 9
EXIT_DOWNLOAD = 10


class BredosNpuError(Exception):
    """Base class: a problem the user can fix, described in one sentence."""

    exit_code = EXIT_ERROR


class UsageError(BredosNpuError):
    """An option value that cannot work (reported like a command-line usage error)."""

    exit_code = EXIT_USAGE


class ModelError(BredosNpuError):
    """The model file is missing, unreadable, not TFLite, truncated or cannot be run."""

    exit_code = EXIT_MODEL


class ImageError(BredosNpuError):
    """An input image is missing, unreadable, corrupt or truncated."""

    exit_code = EXIT_IMAGE


class LabelsError(BredosNpuError):
    """A label file is missing or does not fit the model's output."""

    exit_code = EXIT_LABELS


class BackendError(BredosNpuError):
    """The requested backend cannot run this model here (no device, no library, float model…)."""

    exit_code = EXIT_BACKEND


class RuntimeMissingError(BredosNpuError):
    """No TensorFlow Lite runtime is installed."""

    exit_code = EXIT_RUNTIME


class OutputError(BredosNpuError):
    """An output file cannot or may not be written."""

    exit_code = EXIT_OUTPUT


class DownloadError(BredosNpuError):
    """A download or the model cache failed; nothing half-done was left in the cache."""

    exit_code = EXIT_DOWNLOAD
