"""Object tracks with stable ids across video frames: ByteTrack as packaged in ``supervision``.

Why this tracker (checked against PyPI for the ``[video]`` extra, November 2026):

- ``supervision`` 0.30 ships ByteTrack (Zhang et al., ECCV 2022) as a pure-Python wheel whose
  dependencies (numpy, scipy, matplotlib, Pillow, PyYAML, PyAV, ...) all have manylinux aarch64
  wheels for CPython 3.11-3.14, and it needs no OpenCV since 0.30. Its ``PolygonZone`` and
  ``LineZone`` give the zones and line counts of :mod:`bredos_npu.tasks.events`.
- supervision 0.31 moved ByteTrack to Roboflow's ``trackers`` package, which requires the GUI
  build of ``opencv-python`` (it needs ``libGL.so.1``, absent from headless board images, and
  takes seconds to import), so the extra pins ``supervision>=0.30,<0.31`` until ``trackers``
  can do without it. Swapping is this one module.
- ``norfair`` needs ``filterpy``, which has no wheels at all (source only), and pins numpy < 2.

supervision prints a UserWarning on import when OpenCV is absent (it then uses numpy) and a
deprecation notice for ByteTrack; both are expected here and silenced.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.errors import Reason, RuntimeMissingError
from bredos_npu.tasks.detect import Detection


def supervision() -> Any:
    """The ``supervision`` module, imported quietly, or RuntimeMissingError naming the extra."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import supervision as sv
        except ImportError:
            raise RuntimeMissingError("Tracking needs supervision", "pip install 'bredos-npu[video]'",
                                      Reason.MISSING_PACKAGE, package="supervision",
                                      extra="video") from None
    return sv


class Tracked(NamedTuple):
    """A detection with the id of its track (1, 2, ...; stable while the object stays in view)."""

    track: int
    detection: Detection


def to_sv(detections: Sequence[Detection]) -> Any:
    """supervision's Detections for ours (boxes xyxy in pixels), with each one's position."""
    sv = supervision()
    if not detections:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array([tuple(d.bbox) for d in detections], dtype=np.float32),
        confidence=np.array([d.score for d in detections], dtype=np.float32),
        class_id=np.array([d.id for d in detections], dtype=int),
        data={"position": np.arange(len(detections))})


class Tracker:
    """Give detections of consecutive frames stable track ids.

    frame_rate: frames per second the tracker sees (after sampling), which scales how long a
    lost track is kept: ``lost_seconds``. min_score: detections under it never start a track.
    min_frames: frames a track must be seen before it is reported.
    """

    def __init__(self, frame_rate: float = 30.0, lost_seconds: float = 1.0, min_score: float = 0.25,
                 min_frames: int = 1, match_threshold: float = 0.8) -> None:
        sv = supervision()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # ByteTrack counts its buffer in frames at 30 fps and scales by frame_rate / 30.
            self._tracker = sv.ByteTrack(track_activation_threshold=min_score,
                                         lost_track_buffer=max(1, round(lost_seconds * 30)),
                                         minimum_matching_threshold=match_threshold,
                                         frame_rate=max(1e-3, frame_rate),
                                         minimum_consecutive_frames=min_frames)

    def update(self, detections: Sequence[Detection]) -> list[Tracked]:
        """The detections of the next frame that belong to a track, best score first."""
        tracked = self._tracker.update_with_detections(to_sv(detections))
        found = [Tracked(int(track), detections[int(position)])
                 for track, position in zip(tracked.tracker_id, tracked.data.get("position", []),
                                            strict=True)
                 if track is not None and int(track) >= 0]
        return sorted(found, key=lambda t: -t.detection.score)
