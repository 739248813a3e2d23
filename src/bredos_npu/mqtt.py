"""Counts and events published to MQTT the way Home Assistant expects them (paho-mqtt).

Topics, for a stream named ``porch`` and the default prefix ``bredos_npu``:

- ``bredos_npu/porch/availability``: ``online`` while running, ``offline`` after (also the
  broker's last will, so a crash shows as unavailable). Retained.
- ``bredos_npu/porch/<label>/count``: objects of that label in view. Retained, sent on change.
- ``bredos_npu/porch/<zone>/<label>/count``: objects of that label inside a zone. Retained.
- ``bredos_npu/porch/<line>/<label>/in`` and ``.../out``: crossings of a line. Retained.
- ``bredos_npu/porch/events``: one JSON document per event (appear, stay, leave, enter, exit,
  cross). Not retained.
- ``homeassistant/sensor/bredos_npu_porch/<object>/config``: MQTT discovery, sent (retained)
  before a sensor's first value, so the sensors appear in Home Assistant by themselves, grouped
  under one device per stream.

Names in topics are lower case, other characters than a-z, 0-9 and _ become _.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from bredos_npu import __version__
from bredos_npu.errors import Reason, RuntimeMissingError, SourceError, UsageError
from bredos_npu.tasks.events import Event

DEFAULT_PREFIX = "bredos_npu"
DISCOVERY_PREFIX = "homeassistant"


def slug(text: str) -> str:
    """A topic- and id-safe name: ``Front Door`` → ``front_door``."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "unnamed"


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise RuntimeMissingError("MQTT publishing needs paho-mqtt", "pip install 'bredos-npu[video]'",
                                  Reason.MISSING_PACKAGE, package="paho-mqtt", extra="video") from None
    return mqtt


class MqttPublisher:
    """Publish one stream's counts and events to a broker.

    url: ``mqtt://[user[:password]@]host[:port]`` (1883 by default) or ``mqtts://`` (TLS, 8883).
    stream: the stream's name (in topics and in Home Assistant). prefix / discovery_prefix:
    the topic roots. timeout: seconds to wait for the broker (connection and last messages).
    model: shown as the device's model in Home Assistant.
    """

    def __init__(self, url: str, stream: str, prefix: str = DEFAULT_PREFIX,
                 discovery_prefix: str = DISCOVERY_PREFIX, timeout: float = 5.0,
                 model: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise UsageError(f"The MQTT broker {url!r} is not of the form mqtt://[user:password@]host[:port]",
                             reason=Reason.BAD_VALUE, option="mqtt", value=url)
        self.host, self.tls = parts.hostname, parts.scheme == "mqtts"
        try:
            self.port = parts.port or (8883 if self.tls else 1883)
        except ValueError:
            raise UsageError(f"The MQTT broker {url!r} has an invalid port", reason=Reason.BAD_VALUE,
                             option="mqtt", value=url) from None
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.stream, self.node = slug(stream), f"{slug(prefix)}_{slug(stream)}"
        self.base = f"{prefix}/{self.stream}"
        self.discovery_prefix, self.timeout, self.model = discovery_prefix, timeout, model
        self.availability = f"{self.base}/availability"
        self._sent: dict[str, str] = {}  # state topic -> last payload
        self._sensors: dict[str, tuple[str, str, int, bool]] = {}  # object id -> topic, name, value
        self._pending: list[Any] = []
        self._connected = threading.Event()
        self._refusal: str | None = None
        self.client: Any = None

    @property
    def where(self) -> str:
        return f"mqtt{'s' if self.tls else ''}://{self.host}:{self.port}"

    def connect(self) -> None:
        """Connect (SourceError when the broker cannot be reached or refuses us) and go online."""
        mqtt = _paho()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"bredos-npu-{self.stream}-{os.getpid()}")
        client.connect_timeout = self.timeout
        if self.user is not None:
            client.username_pw_set(self.user, self.password)
        if self.tls:
            client.tls_set()
        client.will_set(self.availability, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as error:
            raise SourceError(f"The MQTT broker {self.where} could not be reached "
                              f"({error.strerror or error})", reason=Reason.BROKER_UNREACHABLE,
                              url=self.where) from None
        client.loop_start()
        if not self._connected.wait(self.timeout) or self._refusal:
            client.loop_stop()
            client.disconnect()
            why = self._refusal or f"no answer within {self.timeout:g} s"
            raise SourceError(f"The MQTT broker {self.where} refused the connection ({why})",
                              reason=Reason.BROKER_REFUSED, url=self.where)
        self.client = client
        self._publish(self.availability, "online")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        self._connected.set()

    def update(self, counts: dict[str, int], zone_counts: dict[tuple[str, str], int] | None = None,
               crossings: dict[tuple[str, str, str], int] | None = None) -> None:
        """Publish the counts that changed; a sensor whose objects went away goes back to 0."""
        wanted = {f"{slug(label)}_count": (f"{slug(label)}/count", f"{label} count", n, False)
                  for label, n in counts.items()}
        for (zone, label), n in (zone_counts or {}).items():
            wanted[f"{slug(zone)}_{slug(label)}_count"] = (
                f"{slug(zone)}/{slug(label)}/count", f"{label} in {zone}", n, False)
        for (line, label, direction), n in (crossings or {}).items():
            wanted[f"{slug(line)}_{slug(label)}_{direction}"] = (
                f"{slug(line)}/{slug(label)}/{direction}", f"{label} crossing {line} {direction}", n, True)
        for object_id, (topic, name, _, total) in self._sensors.items():
            wanted.setdefault(object_id, (topic, name, 0, total))
        for object_id, (topic, name, value, total) in wanted.items():
            self._state(object_id, topic, name, value, total)

    def event(self, event: Event) -> None:
        """One event as JSON on ``<prefix>/<stream>/events`` (not retained)."""
        self._publish(f"{self.base}/events", json.dumps({"stream": self.stream, **event.document()}),
                      retain=False)

    def close(self) -> None:
        """Go offline (retained), wait for what is queued (up to ``timeout``), disconnect."""
        if self.client is None:
            return
        self._publish(self.availability, "offline")
        for message in self._pending:
            try:
                message.wait_for_publish(self.timeout)
            except (RuntimeError, ValueError):  # the connection went: nothing more to wait for
                break
        self.client.loop_stop()
        self.client.disconnect()
        self.client = None

    def _state(self, object_id: str, topic: str, name: str, value: int, total: bool = False) -> None:
        state_topic = f"{self.base}/{topic}"
        if object_id not in self._sensors:
            self._publish(f"{self.discovery_prefix}/sensor/{self.node}/{object_id}/config",
                          json.dumps(self.discovery(object_id, state_topic, name, total)))
        self._sensors[object_id] = (topic, name, value, total)
        self._publish(state_topic, str(value))

    def discovery(self, object_id: str, state_topic: str, name: str, total: bool = False) -> dict[str, Any]:
        """Home Assistant's MQTT discovery document for one sensor."""
        return {
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
            "object_id": f"{self.node}_{object_id}",
            "state_topic": state_topic,
            "availability_topic": self.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "state_class": "total_increasing" if total else "measurement",
            "icon": "mdi:counter",
            "device": {"identifiers": [self.node], "name": f"bredos-npu {self.stream}",
                       "manufacturer": "bredos-npu", "model": self.model or "object detection",
                       "sw_version": __version__},
            "origin": {"name": "bredos-npu", "sw_version": __version__},
        }

    def _publish(self, topic: str, payload: str, retain: bool = True) -> None:
        if retain and self._sent.get(topic) == payload:
            return
        if retain:
            self._sent[topic] = payload
        if self.client is not None:
            self._pending = [m for m in self._pending if not m.is_published()]
            self._pending.append(self.client.publish(topic, payload, qos=1, retain=retain))
