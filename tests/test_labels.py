"""Label files: plain, numbered, embedded in the model, and ones that do not fit."""

from __future__ import annotations

import pytest
from conftest import DEFAULT_MODEL, LABELS

from bredos_npu.errors import LabelsError
from bredos_npu.models.labels import fit_labels, labels_from_model, parse_labels, read_label_file
from bredos_npu.models.tflite_file import embedded_files


def test_plain_lines_are_numbered_from_zero():
    assert parse_labels("background\ncat\ndog\n\n") == {0: "background", 1: "cat", 2: "dog"}


def test_pycoral_numbered_formats():
    assert parse_labels("0  person\n2: car\n") == {0: "person", 2: "car"}


def test_numbered_file_may_skip_ids():
    assert fit_labels({0: "person", 2: "car"}, 4, "x") == ["person", "1", "car", "3"]


def test_1001_lines_for_1001_classes():
    labels = fit_labels(read_label_file(LABELS / "imagenet_labels.txt"), 1001, "imagenet")
    assert labels[0] == "background" and labels[286] == "Egyptian cat"


def test_one_short_gets_background_first():
    assert fit_labels({0: "a", 1: "b"}, 3, "x") == ["background", "a", "b"]


@pytest.mark.parametrize(("labels", "classes"), [({0: "a"}, 5), ({i: "x" for i in range(12)}, 10)])
def test_lengths_that_do_not_fit(labels, classes):
    with pytest.raises(LabelsError, match=f"has {len(labels)} labels but the model has {classes}"):
        fit_labels(labels, classes, "f.txt")


def test_empty_file(tmp_path):
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(LabelsError, match="is empty"):
        fit_labels(read_label_file(tmp_path / "e.txt"), 10, "e.txt")


def test_binary_file_is_not_a_label_file(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(LabelsError, match="is not a text label file"):
        read_label_file(tmp_path / "b.txt")


def test_labels_embedded_in_the_model():
    files = embedded_files(DEFAULT_MODEL.read_bytes())
    assert list(files) == ["imagenet_labels.txt"]
    assert labels_from_model(files, 1001)[286] == "Egyptian cat"
    assert labels_from_model(files, 90) is None


def test_notes_after_a_blank_line_are_not_labels():
    labels = read_label_file(LABELS / "pascal_voc_segmentation_labels.txt")
    assert len(labels) == 21 and labels[0] == "background" and labels[20] == "tvmonitor"


def test_a_stray_blank_line_inside_the_labels_is_skipped():
    lines = (LABELS / "imagenet_labels.txt").read_text().splitlines()
    labels = parse_labels("\n".join([*lines[:10], "", *lines[10:]]))
    assert len(labels) == 1001 and labels[286] == "Egyptian cat"
