"""Label files: plain one-per-line, or "ID label" / "ID: label" lines (pycoral style)."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from bredos_npu.errors import LabelsError, Reason
from bredos_npu.inputs import LABELS, read_regular, shown

_ID_LINE = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")


def parse_labels(text: str) -> dict[int, str]:
    """Index → label. Plain files number their non-blank lines from 0; unused ids are written as
    "???" or "n/a". A last paragraph shorter than the rest is taken as notes and dropped (Coral's
    Pascal VOC file has two lines of notes after its 21 labels)."""
    lines = [line.rstrip("\r").lstrip("\ufeff").strip() for line in text.splitlines()]
    filled = [line for line in lines if line]
    # A plain file fails on its first line: no need to try the pattern on its 1000 others.
    numbered = [_ID_LINE.match(line) for line in filled] if filled and _ID_LINE.match(filled[0]) else []
    if numbered and all(numbered):
        return {int(m.group(1)): m.group(2) for m in numbered if m}
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    paragraphs = [p for p in paragraphs if p]
    if len(paragraphs) > 1 and len(paragraphs[-1]) < sum(len(p) for p in paragraphs[:-1]):
        paragraphs.pop()
    return dict(enumerate(line for paragraph in paragraphs for line in paragraph))


def read_label_file(path: str | os.PathLike[str]) -> dict[int, str]:
    content = read_regular(path, LABELS)
    try:
        text = content.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise LabelsError(f"{shown(path)} is not a text label file",
                          "pass a UTF-8 file, one label per line", Reason.LABELS_NOT_TEXT,
                          path=path) from None
    return parse_labels(text)


def fit_labels(labels: dict[int, str], classes: int, source: str) -> list[str]:
    """A list of exactly ``classes`` names, index i for output i.

    A plain file with one label fewer than the model's classes is taken to lack the leading
    "background" class of 1001-class ImageNet models; an explicitly numbered file may skip ids
    (COCO). Anything else that does not fit is an error.
    """
    if not labels:
        raise LabelsError(f"The label file {source} is empty", "pass a file with one label per line",
                          Reason.LABELS_EMPTY, path=source)
    dense = sorted(labels) == list(range(len(labels)))
    if max(labels) < classes:
        if len(labels) == classes or not dense:
            return [labels.get(i, str(i)) for i in range(classes)]
        if len(labels) == classes - 1:
            return ["background", *(labels[i] for i in range(classes - 1))]
    raise LabelsError(f"The label file {source} has {len(labels)} labels but the model has {classes} classes",
                      "pass the label file that belongs to this model", Reason.LABELS_MISMATCH,
                      path=source, labels=len(labels), classes=classes)


def labels_from_model(files: dict[str, bytes], classes: int) -> list[str] | None:
    """The first embedded .txt file whose labels fit ``classes``; None when none does."""
    ordered = sorted(files, key=lambda name: ("label" not in name.lower(), name))
    for name in ordered:
        if not name.lower().endswith(".txt"):
            continue
        try:
            return fit_labels(parse_labels(files[name].decode("utf-8")), classes, name)
        except (LabelsError, UnicodeDecodeError):
            continue
    return None


def check_against(labels: dict[int, str], reference: dict[int, str] | None, source: str) -> None:
    """For detection/segmentation, whose outputs do not say how many classes there are: a label
    file must roughly match the label file the model carries (one line of slack for a leading
    "background")."""
    if reference and abs(len(labels) - len(reference)) > 1:
        raise LabelsError(f"The label file {source} has {len(labels)} labels but the model's own "
                          f"label file has {len(reference)}", "pass the label file that belongs to "
                          "this model, or none to use the model's", Reason.LABELS_MISMATCH,
                          path=source, labels=len(labels), classes=len(reference))


def first_label_map(files: dict[str, bytes]) -> dict[int, str] | None:
    """The labels of the first embedded .txt file (files named *label* first), or None."""
    for name in sorted(files, key=lambda n: ("label" not in n.lower(), n)):
        if name.lower().endswith(".txt"):
            try:
                return parse_labels(files[name].decode("utf-8")) or None
            except UnicodeDecodeError:
                continue
    return None


class LabelSet(NamedTuple):
    """A model's class names. ``names``: one per output class of a classifier (index i names
    output i), else None. ``by_id``: class id → label for every task (detection and segmentation
    ids are looked up in it), or None when there are no labels."""

    names: list[str] | None
    by_id: dict[int, str] | None


def choose_labels(label_file: str | os.PathLike[str] | None, embedded: dict[str, bytes],
                  classes: int | None = None, map_classes: int | None = None) -> LabelSet:
    """The labels for a model, from ``label_file`` when given, else from the model's own files.

    embedded: the files packed in the model (name → bytes). classes: the number of classes of a
    classifier's score vector (None: not a classifier). map_classes: the classes of a per-pixel
    map (segmentation). Both as :func:`bredos_npu.runtime.interpreter.output_classes` counts them.
    A classifier's or segmenter's labels must fit its output (with the "background" offset of
    :func:`fit_labels`); a detector's file is checked against the model's own label file
    (:func:`check_against`), since its outputs do not say how many classes exist.
    """
    if label_file is not None:
        label_map = read_label_file(label_file)
        if classes or map_classes:
            names = fit_labels(label_map, classes or map_classes or 0, str(label_file))
            return LabelSet(names if classes else None, dict(enumerate(names)))
        check_against(label_map, first_label_map(embedded), str(label_file))
        return LabelSet(None, label_map)
    if classes:
        names = labels_from_model(embedded, classes)
        if names:
            return LabelSet(names, dict(enumerate(names)))
    return LabelSet(None, first_label_map(embedded))
