"""Events from object tracks: an object appears, stays, leaves; enters or exits a zone; crosses a line.

Debounced: an object must be seen in ``min_frames`` consecutive analysed frames to appear (or to
be inside a zone), and missed in as many to leave, so a detector's flicker does not flood Home
Assistant with events. Zones are polygons, tested at the bottom centre of each box (where the
object touches the ground); lines count crossings in each direction with supervision's LineZone.
Coordinates are pixels of the frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.errors import Reason, UsageError
from bredos_npu.tasks.tracking import Tracked, supervision, to_sv

Point = tuple[float, float]


class Zone(NamedTuple):
    """A named polygon (at least 3 points, pixels)."""

    name: str
    polygon: tuple[Point, ...]


class Line(NamedTuple):
    """A named line from ``start`` to ``end`` (pixels). Crossing it from its right-hand side to
    its left-hand side (seen from ``start`` looking at ``end``) counts as "in"."""

    name: str
    start: Point
    end: Point


class Event(NamedTuple):
    """Something that happened to a tracked object.

    kind: "appear", "stay" (in view for ``stay_seconds``), "leave", "enter"/"exit" (a zone),
    "cross" (a line, ``direction`` "in" or "out"). frame / time: where it happened (frame index,
    seconds). place: the zone or line name, else None. seconds: how long the object had been in
    view (or in the zone) by then.
    """

    kind: str
    label: str
    track: int
    frame: int
    time: float
    place: str | None = None
    direction: str | None = None
    seconds: float = 0.0

    def document(self) -> dict[str, Any]:
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in self._asdict().items() if value is not None}


def parse_zone(text: str) -> Zone:
    """``NAME=x,y;x,y;x,y[;...]`` (pixels) as a Zone."""
    name, points = _split(text, "zone", "NAME=x,y;x,y;x,y")
    polygon = tuple(_point(p, text) for p in points.split(";") if p.strip())
    if len(polygon) < 3:
        raise UsageError(f"The zone {text!r} needs at least 3 points: NAME=x,y;x,y;x,y",
                         reason=Reason.BAD_VALUE)
    return Zone(name, polygon)


def parse_line(text: str) -> Line:
    """``NAME=x1,y1,x2,y2`` (pixels) as a Line."""
    name, numbers = _split(text, "line", "NAME=x1,y1,x2,y2")
    values = numbers.replace(";", ",").split(",")
    if len(values) != 4:
        raise UsageError(f"The line {text!r} needs 4 numbers: NAME=x1,y1,x2,y2", reason=Reason.BAD_VALUE)
    x1, y1 = _point(",".join(values[:2]), text)
    x2, y2 = _point(",".join(values[2:]), text)
    if (x1, y1) == (x2, y2):
        raise UsageError(f"The line {text!r} has the same start and end", reason=Reason.BAD_VALUE)
    return Line(name, (x1, y1), (x2, y2))


def _split(text: str, what: str, form: str) -> tuple[str, str]:
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise UsageError(f"The {what} {text!r} is not of the form {form}", reason=Reason.BAD_VALUE)
    return name.strip(), rest


def _point(text: str, whole: str) -> Point:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{whole!r}: {text!r} is not a point x,y in pixels",
                         reason=Reason.BAD_VALUE) from None
    return x, y


@dataclass
class _Track:
    label: str
    first_time: float
    seen: int = 0
    missed: int = 0
    present: bool = False
    stayed: bool = False
    zones: dict[str, list[float]] = field(default_factory=dict)  # name -> [inside run, outside run, since]
    inside: set[str] = field(default_factory=set)


class EventDetector:
    """Turn each frame's tracked objects into events and live counts.

    min_frames: consecutive frames to confirm an appearance, a departure or a zone change.
    stay_seconds: in view this long gives one "stay" event. zones / lines: see Zone and Line.
    """

    def __init__(self, min_frames: int = 3, stay_seconds: float = 10.0, zones: Sequence[Zone] = (),
                 lines: Sequence[Line] = ()) -> None:
        if min_frames < 1:
            raise UsageError(f"min_frames must be 1 or more, not {min_frames}", reason=Reason.BAD_VALUE)
        self.min_frames, self.stay_seconds = min_frames, stay_seconds
        self.zones, self.lines = list(zones), list(lines)
        self.tracks: dict[int, _Track] = {}
        sv = supervision() if zones or lines else None
        self._polygons = [sv.PolygonZone(polygon=np.round(np.array(z.polygon)).astype(int))
                          for z in self.zones] if sv else []
        self._lines = [sv.LineZone(start=sv.Point(*line.start), end=sv.Point(*line.end),
                                   triggering_anchors=[sv.Position.BOTTOM_CENTER])
                       for line in self.lines] if sv else []
        self.crossings: Counter[tuple[str, str, str]] = Counter()  # (line, label, in/out) -> count

    def update(self, frame: int, seconds: float, tracked: Sequence[Tracked]) -> list[Event]:
        """Events of this frame (in the order they happened: departures last)."""
        events: list[Event] = []
        current = {t.track: t for t in tracked}
        inside = self._inside(tracked)
        for track_id, item in current.items():
            state = self.tracks.setdefault(track_id, _Track(item.detection.label, seconds))
            state.seen, state.missed = state.seen + 1, 0
            if not state.present and state.seen >= self.min_frames:
                state.present = True
                events.append(Event("appear", state.label, track_id, frame, seconds))
            if state.present and not state.stayed and seconds - state.first_time >= self.stay_seconds:
                state.stayed = True
                events.append(Event("stay", state.label, track_id, frame, seconds,
                                    seconds=seconds - state.first_time))
            if state.present:
                events += self._zone_events(track_id, state, inside.get(track_id, set()), frame, seconds)
        events += self._crossings(tracked, frame, seconds)
        for track_id, state in list(self.tracks.items()):
            if track_id in current:
                continue
            state.seen, state.missed = 0, state.missed + 1
            if state.missed >= self.min_frames:
                if state.present:
                    events += [Event("exit", state.label, track_id, frame, seconds, name,
                                     seconds=seconds - state.zones[name][2]) for name in sorted(state.inside)]
                    events.append(Event("leave", state.label, track_id, frame, seconds,
                                        seconds=seconds - state.first_time))
                del self.tracks[track_id]
        return events

    def counts(self) -> dict[str, int]:
        """Objects in view per label (confirmed appearances that have not left)."""
        return dict(Counter(s.label for s in self.tracks.values() if s.present))

    def zone_counts(self) -> dict[tuple[str, str], int]:
        """Objects inside each zone per label: (zone, label) -> count (only pairs with someone inside)."""
        found: Counter[tuple[str, str]] = Counter()
        for state in self.tracks.values():
            for name in state.inside:
                found[(name, state.label)] += 1
        return dict(found)

    def _inside(self, tracked: Sequence[Tracked]) -> dict[int, set[str]]:
        if not self._polygons or not tracked:
            return {}
        detections = to_sv([t.detection for t in tracked])
        result: dict[int, set[str]] = {t.track: set() for t in tracked}
        for zone, polygon in zip(self.zones, self._polygons, strict=True):
            for item, hit in zip(tracked, polygon.trigger(detections), strict=True):
                if hit:
                    result[item.track].add(zone.name)
        return result

    def _zone_events(self, track_id: int, state: _Track, inside: set[str], frame: int,
                     seconds: float) -> list[Event]:
        events = []
        for zone in self.zones:
            runs = state.zones.setdefault(zone.name, [0, 0, seconds])
            now_in = zone.name in inside
            runs[0], runs[1] = (runs[0] + 1, 0) if now_in else (0, runs[1] + 1)
            if now_in and zone.name not in state.inside and runs[0] >= self.min_frames:
                state.inside.add(zone.name)
                runs[2] = seconds
                events.append(Event("enter", state.label, track_id, frame, seconds, zone.name))
            elif not now_in and zone.name in state.inside and runs[1] >= self.min_frames:
                state.inside.discard(zone.name)
                events.append(Event("exit", state.label, track_id, frame, seconds, zone.name,
                                    seconds=seconds - runs[2]))
        return events

    def _crossings(self, tracked: Sequence[Tracked], frame: int, seconds: float) -> list[Event]:
        if not self._lines or not tracked:
            return []
        detections = to_sv([t.detection for t in tracked])
        detections.tracker_id = np.array([t.track for t in tracked], dtype=int)
        events = []
        for line, zone in zip(self.lines, self._lines, strict=True):
            crossed_in, crossed_out = zone.trigger(detections)
            for item, went_in, went_out in zip(tracked, crossed_in, crossed_out, strict=True):
                for direction, crossed in (("in", went_in), ("out", went_out)):
                    if crossed:
                        self.crossings[(line.name, item.detection.label, direction)] += 1
                        events.append(Event("cross", item.detection.label, item.track, frame,
                                            seconds, line.name, direction))
        return events
