"""The --jsonl/--csv results file of the image commands: one record per input, flushed whole and
published at the end, and what --resume reads back from an earlier or killed run.

Imported only when a results file is asked for: a plain ``classify IMAGE`` needs neither json nor
csv (start-up time, see benchmarks/bench_start.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bredos_npu.cli.batch import Outputs
from bredos_npu.errors import OutputError, Reason
from bredos_npu.outputs import STDOUT, WRITE_ERRORS, AtomicFile, remove_leftover, results_leftovers, shown

if TYPE_CHECKING:
    from bredos_npu.runtime.pipeline import Result
    from bredos_npu.tasks.registry import Task


class Previous(NamedTuple):
    """A results file a --resume run continues: its inputs, its bytes and what it was, and the
    temporary files of killed runs whose records were taken into ``content``."""

    inputs: frozenset[str]
    content: bytes
    stat: os.stat_result | None
    adopted: tuple[Path, ...] = ()
    nodes: bool = False  # the CSV has a cluster run's node column (which a local run fills too)


NOTHING_BEFORE = Previous(frozenset(), b"", None)


def read_previous(outputs: Outputs, view: Task) -> Previous:
    """The inputs already in the --jsonl/--csv file, and in the ``.part`` files of runs writing it
    that were killed (SIGKILL, power loss); nothing when there is neither."""
    path = outputs.results_file
    if not (outputs.resume and path):
        return NOTHING_BEFORE
    try:
        with open(path, "rb") as handle:
            before: os.stat_result | None = os.fstat(handle.fileno())
            content = handle.read()
    except FileNotFoundError:
        before, content = None, b""
    except OSError as error:
        raise OutputError(f"Cannot read {shown(path)} to continue it: {error.strerror or error}",
                          reason=Reason.OUTPUT_NOT_RESUMABLE, path=Path(path)) from None
    outputs = _columns_of(content, outputs)
    inputs = _inputs_of(path, content, outputs, view)
    if content and not content.endswith(b"\n"):
        raise OutputError(f"Cannot continue {shown(path)}: its last line is incomplete",
                          "name a new file, or remove it", Reason.OUTPUT_NOT_RESUMABLE, path=Path(path))
    adopted = results_leftovers(path)
    for part in adopted:
        content += _whole_records(part, outputs, view, inputs, header=not content)
        outputs = _columns_of(content, outputs)
    return Previous(frozenset(inputs), content, before, tuple(adopted), outputs.nodes)


def _columns_of(content: bytes, outputs: Outputs) -> Outputs:
    """``outputs`` with the node column when the CSV ``content`` continued has one: a local run
    goes on with a file a --cluster run started, in its columns (the reverse stays refused: the
    rows before would have no node)."""
    if outputs.csv and not outputs.nodes and content.split(b"\n", 1)[0].rstrip(b"\r").endswith(b",node"):
        return outputs._replace(nodes=True)
    return outputs


def _inputs_of(path: str | Path, content: bytes, outputs: Outputs, view: Task) -> set[str]:
    try:
        text = content.decode("utf-8")
        return _csv_inputs(text, view, outputs.nodes) if outputs.csv else _jsonl_inputs(text)
    except ValueError as error:
        raise OutputError(f"Cannot continue {shown(path)}: {error}", "name a new file, or remove it",
                          Reason.OUTPUT_NOT_RESUMABLE, path=Path(path)) from None


def _whole_records(part: Path, outputs: Outputs, view: Task, inputs: set[str], header: bool) -> bytes:
    """The records of a killed run's ``.part`` file that are whole and not in ``inputs`` (which
    grows by theirs). A CSV file's last input is left out: its rows may be cut short."""
    try:
        content = part.read_bytes()
    except OSError as error:
        raise OutputError(f"Cannot read {shown(part)}, left by a run that was killed, to continue it: "
                          f"{error.strerror or error}", "remove it", Reason.OUTPUT_NOT_RESUMABLE,
                          path=part) from None
    whole = content[:content.rfind(b"\n") + 1]
    if header:  # the first records continued: they choose the columns
        outputs = _columns_of(whole, outputs)
    _inputs_of(part, whole, outputs, view)  # only results of this command
    text = whole.decode("utf-8")
    if not outputs.csv:
        lines = [line for line in text.splitlines(keepends=True) if json.loads(line)["image"] not in inputs]
        inputs.update(json.loads(line)["image"] for line in lines)
        return "".join(lines).encode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    last = rows[-1]["image"] if rows else None
    rows = [row for row in rows if row["image"] not in inputs and row["image"] != last]
    inputs.update(row["image"] for row in rows)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or ())
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _jsonl_inputs(text: str) -> set[str]:
    inputs = set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise ValueError(f"line {number} is not a result of this command")
        inputs.add(record["image"])
    return inputs


def _csv_inputs(text: str, view: Task, nodes: bool) -> set[str]:
    if not text:
        return set()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    expected = ["image", *view.csv_fields, "error", *(["node"] if nodes else [])]
    if reader.fieldnames != expected:
        raise ValueError(f"its columns are not the ones this command writes ({', '.join(expected)})")
    return {row["image"] for row in reader}


def local_node() -> str:
    """What the node column says for results computed here, without a cluster: the host name
    (a cluster run writes Ray's ``IP:node-id``)."""
    import socket

    return socket.gethostname()


class ResultsFile:
    """The --jsonl/--csv output: earlier results first (--resume), then one record per input,
    each flushed whole, published at the end (see :class:`bredos_npu.outputs.AtomicFile`)."""

    def __init__(self, outputs: Outputs, view: Task, previous: Previous | None) -> None:
        previous = previous or NOTHING_BEFORE
        path = outputs.jsonl or outputs.csv
        assert path
        self.view = view
        self.path = path
        self.records = 0
        self.adopted = previous.adopted
        if path == STDOUT:
            self.file: AtomicFile | None = None
            self.out: Any = sys.stdout
        else:
            self.file = AtomicFile(path, replace=outputs.force, replaces=previous.stat)
            self.out = self.file.handle
            if previous.content:
                self.out.write(previous.content.decode("utf-8"))
        # A local run continuing a cluster run's CSV names this machine in the node column.
        self.here = local_node() if previous.nodes and not outputs.nodes else None
        node = ("node",) if outputs.nodes or previous.nodes else ()
        self.writer = csv.DictWriter(self.out, fieldnames=("image", *view.csv_fields, "error", *node)) \
            if outputs.csv else None
        if self.writer and not previous.content:
            self.writer.writeheader()

    def write(self, source: str, result: Result, document: dict[str, Any]) -> None:
        try:
            if self.writer is not None:
                rows = [{"image": source, "error": document["error"]}] if result.error else \
                    [{"image": source, **row} for row in self.view.csv_rows(result.value)]
                if result.node is not None or self.here is not None:
                    rows = [{**row, "node": result.node or self.here} for row in rows]
                self.writer.writerows(rows)
            else:
                self.out.write(json.dumps(document) + "\n")
            if self.file is not None:
                self.file.checkpoint()
            self.records += 1
        except OSError as error:
            if self.file is None or error.errno not in WRITE_ERRORS:
                raise
            kept = self.file.rescue()
            where = (f"the {self.records} results finished before were kept in {shown(kept)}" if kept
                     else "the results finished before could not be kept anywhere else either")
            raise OutputError(f"Cannot write {shown(self.path)}: {error.strerror or error}; {where}",
                              reason=Reason.OUTPUT_WRITE_FAILED, path=Path(self.path), kept=kept) from None

    def publish(self) -> None:
        """Give the file its name; the killed runs' files whose records it took are removed once
        those records are safe (published, or kept under another name)."""
        if self.file is None:
            return
        try:
            self.file.publish()
        except OutputError as error:
            if error.data.get("kept"):
                self._remove_adopted()
            raise
        self._remove_adopted()

    def _remove_adopted(self) -> None:
        for part in self.adopted:
            remove_leftover(part)

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()
