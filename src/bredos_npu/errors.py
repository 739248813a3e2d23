"""Errors of the Python API: a class (its exit code), a reason (what went wrong) and data.

Every error carries

- ``reason``: a :class:`Reason`, the machine-readable kind (``Reason.OUTPUT_EXISTS``);
- ``data``: what it is about, by name (``path``, ``library``, ``package``, ``tensor``, ``op``...);
- ``fact``: one sentence in API terms saying what is wrong, and ``fix``: what a Python caller can
  do about it (or None). ``str(error)`` is ``"<fact>: <fix>."``.

Messages never name command-line flags or commands: the CLI (:mod:`bredos_npu.cli.errors`) maps
reasons to its own words (``--force``, ``bredos-npu doctor``), a server maps them to HTTP statuses.
Scripts catch the classes; the exit codes are the CLI's (README "Exit status").
"""

from __future__ import annotations

from enum import Enum
from typing import Any

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
EXIT_SOURCE = 11


class Reason(Enum):
    """What went wrong. The value is a stable, lower-case name for JSON and logs."""

    UNSPECIFIED = "unspecified"
    # usage: an argument value that cannot work (data: option, value)
    BAD_VALUE = "bad_value"
    UNKNOWN_TASK = "unknown_task"
    # model (data: path, and for zoo names: name)
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_IS_FOLDER = "model_is_folder"
    MODEL_UNREADABLE = "model_unreadable"
    NOT_TFLITE = "not_tflite"
    MODEL_CORRUPT = "model_corrupt"
    CUSTOM_OP = "custom_op"
    MODEL_LOAD_FAILED = "model_load_failed"
    NOT_AN_IMAGE_MODEL = "not_an_image_model"
    WRONG_TASK = "wrong_task"  # data: task, fits (the task the outputs look made for, or None)
    UNKNOWN_MODEL_NAME = "unknown_model_name"
    NOT_DOWNLOADED = "not_downloaded"
    OFFLINE = "offline"
    NAME_TAKEN = "name_taken"
    BUILTIN_NAME = "builtin_name"
    BAD_NAME = "bad_name"
    BUNDLED_MODEL = "bundled_model"
    ALREADY_NPU_READY = "already_npu_ready"  # quantize: per-tensor uint8 already, nothing to do
    # image (data: path)
    IMAGE_NOT_FOUND = "image_not_found"
    IMAGE_IS_FOLDER = "image_is_folder"
    IMAGE_UNREADABLE = "image_unreadable"
    NOT_AN_IMAGE = "not_an_image"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_CORRUPT = "image_corrupt"
    BAD_IMAGE_TYPE = "bad_image_type"
    NO_IMAGES = "no_images"
    FOLDER_UNREADABLE = "folder_unreadable"  # an input folder that cannot be listed
    # video (data: path or url)
    VIDEO_NOT_FOUND = "video_not_found"
    NOT_A_VIDEO = "not_a_video"
    UNSUPPORTED_CODEC = "unsupported_codec"
    VIDEO_CORRUPT = "video_corrupt"
    NO_CAMERA = "no_camera"
    CAMERA_PERMISSION = "camera_permission"
    CAMERA_UNUSABLE = "camera_unusable"
    # live sources and services (data: url)
    SOURCE_UNREACHABLE = "source_unreachable"
    SOURCE_UNAUTHORIZED = "source_unauthorized"
    SOURCE_FORBIDDEN = "source_forbidden"
    SOURCE_NO_PICTURE = "source_no_picture"
    SOURCE_FAILED = "source_failed"
    SOURCE_GONE = "source_gone"  # data: attempts
    BROKER_UNREACHABLE = "broker_unreachable"
    BROKER_REFUSED = "broker_refused"
    # labels (data: path)
    LABELS_NOT_FOUND = "labels_not_found"
    LABELS_NOT_TEXT = "labels_not_text"
    LABELS_UNREADABLE = "labels_unreadable"
    LABELS_EMPTY = "labels_empty"
    LABELS_MISMATCH = "labels_mismatch"  # data: labels, classes
    # backend (data: library, op, hazard...)
    UNKNOWN_BACKEND = "unknown_backend"
    FLOAT_MODEL = "float_model"
    WOULD_CRASH = "would_crash"
    WRONG_RESULTS = "wrong_results"
    NOT_RK3588 = "not_rk3588"
    NPU_NOT_READY = "npu_not_ready"  # the board side (kernel, driver, device node, permissions)
    NO_DEVICE_NODE = "no_device_node"
    NO_TEFLON = "no_teflon"
    DELEGATE_MISSING = "delegate_missing"
    DELEGATE_NOT_LOADABLE = "delegate_not_loadable"
    NOT_A_DELEGATE = "not_a_delegate"
    NO_DELEGATE = "no_delegate"
    DELEGATE_REFUSED_MODEL = "delegate_refused_model"
    DELEGATE_TOOK_NOTHING = "delegate_took_nothing"
    DELEGATE_CRASHED = "delegate_crashed"  # in the probe's child process (data: stage, detail, log)
    DELEGATE_HUNG = "delegate_hung"  # the probe's deadline passed (data: stage, timeout)
    DELEGATE_FAILED = "delegate_failed"  # at inference, after loading (data: library)
    PARALLEL_FAILED = "parallel_failed"
    CLUSTER_UNREACHABLE = "cluster_unreachable"  # data: address
    CLUSTER_NO_WORKERS = "cluster_no_workers"  # every worker of a cluster run died (data: address)
    # a package is missing (data: package, extra)
    MISSING_PACKAGE = "missing_package"
    # output files (data: path)
    OUTPUT_EXISTS = "output_exists"
    OUTPUT_IS_FOLDER = "output_is_folder"
    OUTPUT_FOLDER_MISSING = "output_folder_missing"
    OUTPUT_FORMAT = "output_format"
    OUTPUT_WRITE_FAILED = "output_write_failed"
    OUTPUT_NOT_REGULAR = "output_not_regular"  # a device, FIFO or socket (data: kind)
    OUTPUT_CONFLICT = "output_conflict"  # created by someone else during the run (data: kept)
    OUTPUT_NOT_RESUMABLE = "output_not_resumable"  # not a results file this command writes
    # downloads and the cache (data: url, path)
    CACHE_UNUSABLE = "cache_unusable"
    CACHE_CORRUPT = "cache_corrupt"
    CACHE_LOCKED = "cache_locked"
    BAD_MIRROR = "bad_mirror"
    HTTP_ERROR = "http_error"
    NETWORK = "network"
    INTEGRITY = "integrity"
    TOO_SLOW = "too_slow"  # below the minimum rate, or past the deadline (data: url)
    TOO_LARGE = "too_large"  # the body is longer than the file (data: url, size, cap)
    DAMAGED = "damaged"  # a cached file no longer matches its digest (data: path)


class BredosNpuError(Exception):
    """Base class: a problem the caller can fix, described in one sentence.

    ``BredosNpuError(fact, fix=None, reason=Reason.UNSPECIFIED, **data)``: ``fact`` says what is
    wrong (no final full stop needed), ``fix`` what to do, in API terms; ``data`` names what it is
    about. ``str()`` joins them into one sentence.
    """

    exit_code = EXIT_ERROR

    def __init__(self, fact: str, fix: str | None = None, reason: Reason = Reason.UNSPECIFIED,
                 **data: Any) -> None:
        self.fact = fact.rstrip(".")
        self.fix = fix
        self.reason = reason
        self.data = data
        super().__init__(f"{self.fact}: {fix}." if fix else f"{self.fact}.")

    @property
    def message(self) -> str:
        """The fact and the fix in one sentence, as ``str(error)``."""
        return str(self)


class UsageError(BredosNpuError):
    """An argument value that cannot work (reported like a command-line usage error)."""

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
    """A required package is missing: a TensorFlow Lite runtime, or an optional extra."""

    exit_code = EXIT_RUNTIME


class OutputError(BredosNpuError):
    """An output file cannot or may not be written."""

    exit_code = EXIT_OUTPUT


class DownloadError(BredosNpuError):
    """A download or the model cache failed; nothing half-done was left in the cache."""

    exit_code = EXIT_DOWNLOAD


class SourceError(BredosNpuError):
    """A live source or network service failed: a camera stream or MQTT broker that cannot be
    reached, refuses the credentials, stalls, or dropped and did not come back."""

    exit_code = EXIT_SOURCE
