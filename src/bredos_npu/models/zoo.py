"""The model zoo: a manifest of known-good models, a verified download cache, local imports.

Cache: ``$BREDOS_NPU_CACHE`` or the XDG cache directory (platformdirs), ``.../bredos-npu/models``.
``$BREDOS_NPU_MODEL_BASE_URL`` replaces the download hosts with a mirror that serves the files
by name (``<mirror>/<file name>``); ``$BREDOS_NPU_OFFLINE=1`` or ``--offline`` forbids network use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bredos_npu.errors import DownloadError, ModelError, Reason, UsageError
from bredos_npu.models import bundled
from bredos_npu.models.integrity import Integrity, Progress, file_digest
from bredos_npu.models.tflite_file import read_model_bytes
from bredos_npu.outputs import atomic_open

if TYPE_CHECKING:
    from bredos_npu.models.inspection.graph import Graph
    from bredos_npu.tasks.registry import OutputShape, Task

CACHE_ENV = "BREDOS_NPU_CACHE"
BASE_URL_ENV = "BREDOS_NPU_MODEL_BASE_URL"
OFFLINE_ENV = "BREDOS_NPU_OFFLINE"
IMPORTS_FILE = "imported.json"
LOCK_FILE = ".lock"
LOCK_WAIT_S = 60.0  # another import or remove holds the index this long at most in practice
VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ZooFile:
    """A downloadable file: where it comes from and how to check it."""

    name: str
    url: str
    integrity: Integrity
    bundled: str | None = None
    size: int | None = None  # bytes, when the manifest records it (downloads are capped at it)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ZooModel:
    """A zoo entry. ``labels``: a label entry name, "embedded" or None. ``coverage``: Teflon's
    share as ``inspect`` computed it, or "unknown"."""

    name: str
    task: str
    file: ZooFile | None
    labels: str | None
    input: str
    quantization: str
    coverage: str
    note: str = ""
    imported_path: str | None = None
    imported_labels: str | None = None


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def cache_dir() -> Path:
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bredos-npu")) / "models"


@cache
def _manifest() -> dict[str, Any]:
    return json.loads(bundled.data_path("zoo.json").read_text())


def _mirror() -> str | None:
    mirror = os.environ.get(BASE_URL_ENV) or None
    if mirror is None:
        return None
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(mirror)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as error:
        problem = f"is not a usable URL ({error})"
    else:
        if parts.scheme not in ("http", "https"):
            problem = "is not an http(s) URL"
        elif not parts.hostname:
            problem = "has no host name"
    if problem:
        raise DownloadError(f"{BASE_URL_ENV}={mirror!r} {problem}", "set it to the mirror's base "
                            "URL, e.g. http://host/models/", Reason.BAD_MIRROR, url=mirror)
    return mirror


def _zoo_file(name: str, entry: dict[str, Any]) -> ZooFile:
    sources = _manifest()["sources"]
    mirror = _mirror()
    file_name = entry["path"].rsplit("/", 1)[-1]
    url = (mirror.rstrip("/") + "/" + file_name) if mirror else sources[entry["source"]] + entry["path"]
    integrity = (Integrity("sha256", entry["sha256"]) if "sha256" in entry
                 else Integrity("git_blob", entry["git_blob"]))
    return ZooFile(name, url, integrity, entry.get("bundled"), entry.get("size"))


def label_file(name: str) -> ZooFile:
    return _zoo_file(name, _manifest()["labels"][name])


def _builtin(name: str) -> ZooModel:
    entry = _manifest()["models"][name]
    return ZooModel(name, entry["task"], _zoo_file(name, entry), entry.get("labels"), entry["input"],
                    entry["quantization"], entry["coverage"], entry.get("note", ""))


def models() -> dict[str, ZooModel]:
    """Every model: the shipped manifest, then local imports."""
    found = {name: _builtin(name) for name in _manifest()["models"]}
    found.update((name, ZooModel(**{**entry, "file": None})) for name, entry in _imports().items())
    return found


def get(name: str) -> ZooModel:
    if name in _manifest()["models"]:  # built-ins never depend on the imports file
        return _builtin(name)
    imports = _imports()
    if name not in imports:
        raise ModelError(f"Unknown model {name!r}", "bredos_npu.models.zoo.models() lists the names",
                         Reason.UNKNOWN_MODEL_NAME, name=name)
    return ZooModel(**{**imports[name], "file": None})


def local_path(model: ZooModel) -> Path:
    """Where the model's file is or will be (bundled files live in the package)."""
    if model.imported_path:
        return Path(model.imported_path)
    assert model.file is not None
    if model.file.bundled:
        return bundled.data_path(model.file.bundled)
    return cache_dir() / model.file.file_name


def is_available(model: ZooModel) -> bool:
    return local_path(model).is_file()


def status(model: ZooModel) -> str:
    """"bundled", "cached", "cached, labels missing", "damaged" or "not downloaded".

    "damaged": the cached model or label file no longer matches the manifest's digest (every
    cached file is read and hashed: milliseconds per MB); ``pull`` repairs it.
    """
    if model.file is not None and model.file.bundled:
        return "bundled"
    if not is_available(model):
        return "not downloaded"
    if damaged(model):
        return "damaged"
    return "cached, labels missing" if missing_labels(model) else "cached"


def intact(path: Path, item: ZooFile, deep: bool = True) -> bool:
    """True when ``path`` has the manifest's size (when it records one) and, with ``deep``, its
    digest."""
    try:
        if item.size is not None and path.stat().st_size != item.size:
            return False
        return not deep or file_digest(path, item.integrity) == item.integrity.digest
    except OSError:
        return False


def damaged(model: ZooModel) -> bool:
    """True when a cached file of a built-in model (or its label file) fails its digest."""
    if model.file is None or model.file.bundled:
        return False
    files = [model.file]
    if model.labels not in (None, "embedded") and not model.imported_labels:
        files.append(label_file(model.labels))
    return any(not item.bundled and (cache_dir() / item.file_name).is_file()
               and not intact(cache_dir() / item.file_name, item) for item in files)


def coverage(model: ZooModel) -> str:
    """Teflon's share as inspect computes it: the manifest's figure, or computed from the local
    file when the manifest says "unknown" ("unknown" while the file is not here)."""
    if model.coverage != "unknown" or not is_available(model) or damaged(model):
        return model.coverage
    from bredos_npu.models.inspection.analysis import inspect_model

    result = inspect_model(local_path(model))
    n = result.partitions
    return (f"NPU: {len(result.npu_ops)}/{len(result.ops)} ops, {result.npu_mac_share:.1%} of MACs, "
            f"{n} partition{'s' if n != 1 else ''} (computed)")


def missing_labels(model: ZooModel) -> bool:
    """True when the model is here but its separate label file is not."""
    if model.imported_labels:
        return not Path(model.imported_labels).is_file()
    if model.labels in (None, "embedded"):
        return False
    item = label_file(model.labels)
    return not (item.bundled or (cache_dir() / item.file_name).is_file())


def _fetch(item: ZooFile, progress: Progress | None, verify: bool = False) -> Path:
    """The cached file, downloaded when missing, or damaged: always checked by size, and by
    digest with ``verify``. A damaged file is replaced only by a verified download."""
    if item.bundled:
        return bundled.data_path(item.bundled)
    target = cache_dir() / item.file_name
    if target.is_file() and intact(target, item, deep=verify):
        return target
    if offline():
        if target.is_file():
            raise ModelError(f"The cached {target} is damaged (it does not match the manifest) and "
                             "offline mode is on", "pull it again on a connected machine",
                             Reason.DAMAGED, name=item.name, path=target)
        raise ModelError(f"{item.name} is not in the cache and offline mode is on",
                         f"pull it on a connected machine, or copy the file to {target}", Reason.OFFLINE,
                         name=item.name, path=target)
    _make_cache(target.parent)
    from bredos_npu.models.download import download  # urllib and friends only when needed

    return download(item.url, target, item.integrity, progress, size=item.size)


def _cache_unusable(folder: Path, error: OSError) -> DownloadError:
    return DownloadError(f"Cannot use the model cache {folder}: {error.strerror or error}",
                         f"set {CACHE_ENV} to a writable folder", Reason.CACHE_UNUSABLE, path=folder)


def _make_cache(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_unusable(folder, error) from None


def pull(name: str, progress: Progress | None = None) -> Path:
    """Make sure the model (and its label file) is in the cache and intact; its local path.

    Cached files are verified again (digest), and a damaged one is downloaded again.
    """
    model = get(name)
    if model.imported_path:
        return local_path(model)
    assert model.file is not None
    path = _fetch(model.file, progress, verify=True)
    labels_path(model, progress, verify=True)
    return path


def labels_path(model: ZooModel, progress: Progress | None = None,
                verify: bool = False) -> Path | None:
    """The model's label file, fetched if needed; None when embedded or absent."""
    if model.imported_labels:
        return Path(model.imported_labels)
    if model.labels in (None, "embedded"):
        return None
    return _fetch(label_file(model.labels), progress, verify)


class Resolved(NamedTuple):
    path: Path
    labels: Path | None
    model: ZooModel | None


def resolve(spec: str | os.PathLike[str], progress: Progress | None = None,
            with_labels: bool = True) -> Resolved:
    """A model file path as given, or a zoo name fetched into the cache when needed."""
    path = Path(spec)
    if os.path.exists(spec) or (str(spec) not in _manifest()["models"] and str(spec) not in _imports()):
        return Resolved(path, None, None)
    model = get(str(spec))
    if model.file is not None and not model.imported_path:
        path = _fetch(model.file, progress)
    else:
        path = local_path(model)
    return Resolved(path, labels_path(model, progress) if with_labels else None, model)


def remove(name: str) -> list[Path]:
    """Delete the model's cached files (and forget an import); the paths removed."""
    model = get(name)
    if model.file is not None and model.file.bundled:
        raise ModelError(f"{name} is bundled with bredos-npu and cannot be removed.",
                         reason=Reason.BUNDLED_MODEL, name=name)
    with index_lock():
        return _remove(name, get(name))  # read again under the lock: another process may have changed it


def _remove(name: str, model: ZooModel) -> list[Path]:
    removed = []
    for path in (local_path(model), Path(model.imported_labels) if model.imported_labels else None):
        if path is not None and path.is_file():
            path.unlink()
            removed.append(path)
    if model.imported_path:
        imports = _imports()
        imports.pop(name, None)
        _save_imports(imports)
    return removed


@contextmanager
def index_lock(wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the cache's lock file (an fcntl lock, released by the kernel if the process dies)
    while the imports index is read and rewritten; DownloadError after ``wait_s`` seconds."""
    import fcntl

    folder = cache_dir()
    _make_cache(folder)
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise _cache_unusable(folder, error) from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DownloadError(f"The model cache {folder} stayed locked by another process "
                                        f"for {wait_s:.0f} s", "try again when it has finished",
                                        Reason.CACHE_LOCKED, path=folder) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # releases the lock


def _imports_file() -> Path:
    return cache_dir() / IMPORTS_FILE


def _imports() -> dict[str, dict[str, Any]]:
    path = _imports_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise _cache_unusable(path.parent, error) from None
    try:
        imports = json.loads(text)
        fields = set(ZooModel.__dataclass_fields__) - {"file"}
        if not isinstance(imports, dict) or not all(
                isinstance(e, dict) and set(e) == fields for e in imports.values()):
            raise ValueError("unexpected layout")
    except ValueError:
        raise DownloadError(f"{path} is corrupt: fix or delete it (the imported models' files stay "
                            f"in {path.parent / 'imported'}).", reason=Reason.CACHE_CORRUPT,
                            path=path) from None
    return imports


def _save_imports(imports: dict[str, dict[str, Any]]) -> None:
    _make_cache(_imports_file().parent)
    with atomic_open(_imports_file(), replace=True) as out:
        json.dump(imports, out, indent=2)


def import_model(source: str | os.PathLike[str], name: str, task: str = "classify",
                 labels: str | os.PathLike[str] | None = None, force: bool = False) -> ZooModel:
    """Copy a local .tflite (and labels) into the cache under ``name``.

    What can be checked without running the model is checked first, and nothing is written when
    a check fails: the file is a complete TFLite model (ModelError), its outputs fit ``task``
    (ModelError, reason WRONG_TASK, data ``fits``: the task they look made for), the label file
    fits its outputs (LabelsError, LABELS_MISMATCH) and the task uses labels at all (UsageError).
    Safe to run from several processes at once: the index is read, changed and written under
    :func:`index_lock`, so no entry is lost and no copied file is left without one.
    """
    from bredos_npu.tasks import registry

    chosen = registry.get(task)  # an unknown task is a usage error
    if not VALID_NAME.fullmatch(name):
        raise ModelError(f"{name!r} is not a usable model name", "use letters, digits, '.', '_' and "
                         "'-', starting with a letter or digit", Reason.BAD_NAME, name=name)
    if name in _manifest()["models"]:
        raise ModelError(f"{name} is a built-in zoo model", "choose another name for the import",
                         Reason.BUILTIN_NAME, name=name)
    _check_fits(source, read_model_bytes(source), chosen, labels)  # before anything is copied
    folder = cache_dir() / "imported"
    _make_cache(folder)
    with index_lock():
        return _import(Path(source), name, task, labels, force, folder)


def _check_fits(source: str | os.PathLike[str], content: bytes, task: Task,
                labels: str | os.PathLike[str] | None) -> None:
    """Raise unless the model's outputs fit ``task`` and the label file fits the outputs."""
    from bredos_npu.models import labels as label_files
    from bredos_npu.models.inspection.graph import parse
    from bredos_npu.models.tflite_file import embedded_files
    from bredos_npu.runtime.interpreter import output_classes
    from bredos_npu.tasks.registry import OutputShape, guess

    graph = parse(content, source)
    outputs = [OutputShape(graph.tensors[t].name, graph.tensors[t].shape) for t in graph.outputs]
    if not all(o.shape for o in outputs):  # e.g. TFLite_Detection_PostProcess: known once allocated
        outputs = _allocated_outputs(source, content)
    if not task.fits(outputs):
        fits = guess(outputs)
        shapes = ", ".join("x".join(map(str, o.shape)) for o in outputs)
        raise ModelError(f"{source} does not look made for the {task.name} task (outputs {shapes})",
                         f"import it with task {fits!r}" if fits else None, Reason.WRONG_TASK,
                         path=source, task=task.name, fits=fits, importing=True)
    if labels is None:
        return
    if not task.uses_labels:
        raise UsageError(f"The {task.name} task uses no labels", "import the model without a label "
                         "file", Reason.BAD_VALUE, option="labels", value=str(labels))
    # The policy load() applies, with the classes counted from the file instead of an interpreter.
    classes = output_classes([o.shape for o in outputs], lambda: _argmax_scores(graph, graph.outputs[0]))
    label_files.choose_labels(labels, embedded_files(content), classes.scores, classes.per_pixel)


def _argmax_scores(graph: Graph, output: int) -> tuple[int, ...] | None:
    """The shape of the scores an ARG_MAX of ``graph`` reduces into tensor ``output``, or None."""
    argmax = next((op for op in graph.ops if op.name == "ARG_MAX" and output in op.outputs), None)
    return graph.tensors[argmax.inputs[0]].shape if argmax is not None else None


def _allocated_outputs(source: str | os.PathLike[str], content: bytes) -> list[OutputShape]:
    """The output shapes the runtime gives the model once its tensors are allocated."""
    from bredos_npu.cstderr import capture_native_stderr
    from bredos_npu.models.tflite_file import explain_load_failure
    from bredos_npu.runtime.litert import find_runtime
    from bredos_npu.tasks.registry import OutputShape

    runtime = find_runtime()
    with capture_native_stderr() as native:  # TFLite's INFO lines are not the user's business
        try:
            interpreter = runtime.interpreter_class(model_content=content)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            failure = f"{error}\n{native.text}"
        else:
            failure = None
    if failure is not None:
        raise explain_load_failure(source, failure)
    return [OutputShape(d["name"], tuple(int(n) for n in d["shape"]))
            for d in interpreter.get_output_details()]


def _import(source: Path, name: str, task: str, labels: str | os.PathLike[str] | None, force: bool,
            folder: Path) -> ZooModel:
    if name in _imports() and not force:
        raise ModelError(f"A model named {name} was imported already", "pass force=True to replace it",
                         Reason.NAME_TAKEN, name=name)
    target = folder / f"{name}.tflite"
    with atomic_open(target, "wb", replace=True) as out, open(source, "rb") as given:
        shutil.copyfileobj(given, out)
    label_target = None
    (folder / f"{name}.labels.txt").unlink(missing_ok=True)  # from an earlier import of the name
    if labels is not None:
        label_target = folder / f"{name}.labels.txt"
        with atomic_open(label_target, "wb", replace=True) as out, open(labels, "rb") as given:
            shutil.copyfileobj(given, out)
    model = ZooModel(name, task, None, "imported" if labels else None, "-", "-", "unknown",
                     f"imported from {source.resolve()}", str(target),
                     str(label_target) if label_target else None)
    imports = _imports()
    entry = asdict(model)
    entry.pop("file")
    imports[name] = entry
    _save_imports(imports)
    return model
