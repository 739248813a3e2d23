"""Counts and events published to a real Mosquitto broker, checked with a real paho subscriber."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cli_runner import run_cli
from test_video import COCO, DETECT, SSD
from video_tools import decoded_frames, scenes_video

import bredos_npu
from bredos_npu.errors import EXIT_SOURCE, EXIT_USAGE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto on 127.0.0.1 with its own configuration; stopped at the end of the test."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    assert Path(binary).exists(), "the MQTT tests need Mosquitto (apt-get install mosquitto)"
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "Mosquitto did not start"
            time.sleep(0.05)
    yield port
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class Subscriber:
    """A paho client collecting (topic, payload, retained) from the broker."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload.decode(), bool(m.retain)))
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_connect = lambda c, *args: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.ready.wait(10), "the subscriber did not subscribe"

    def settle(self, seconds: float = 0.5) -> None:
        """Wait until no message has arrived for ``seconds`` (at most 10 s)."""
        deadline, count = time.monotonic() + 10, -1
        while count != len(self.messages) and time.monotonic() < deadline:
            count = len(self.messages)
            time.sleep(seconds)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_counts_events_and_discovery_reach_home_assistant(broker, capfd, tmp_path) -> None:
    video = scenes_video(tmp_path / "porch.mp4")
    reference = bredos_npu.load(SSD, "cpu", labels=COCO)
    stills = [{d.label for d in reference.detect(f)} for f in decoded_frames(video)]
    animals = set().union(*stills[4:8]) - set().union(*stills[8:])
    assert animals and all("person" in s for s in stills[8:])  # what the scenes hold, seen on stills

    live = Subscriber(broker, "bredos_npu/#", "homeassistant/#")
    try:
        done = run_cli(capfd, "detect", video, *DETECT, "--mqtt", f"mqtt://127.0.0.1:{broker}",
                       "--name", "Front Door", "--min-frames", "2")
        assert done.code == 0, done.err
        live.settle()
    finally:
        live.close()
    base, node = "bredos_npu/front_door", "homeassistant/sensor/bredos_npu_front_door"
    seen = [(topic, payload) for topic, payload, _ in live.messages]
    for label in animals | {"person"}:
        config_topic = f"{node}/{label}_count/config"
        configs = [json.loads(p) for t, p in seen if t == config_topic]
        assert len(configs) == 1, config_topic
        assert configs[0]["state_topic"] == f"{base}/{label}/count"
        assert configs[0]["unique_id"] == f"bredos_npu_front_door_{label}_count"
        assert configs[0]["availability_topic"] == f"{base}/availability"
        assert configs[0]["device"]["identifiers"] == ["bredos_npu_front_door"]
        assert configs[0]["state_class"] == "measurement"
        states = [p for t, p in seen if t == f"{base}/{label}/count"]
        assert seen.index((config_topic, json.dumps(configs[0]))) < \
            seen.index((f"{base}/{label}/count", states[0]))  # discovery first
        assert int(states[0]) >= 1
    events = [json.loads(p) for t, p in seen if t == f"{base}/events"]
    assert {(e["kind"], e["label"]) for e in events} >= {("appear", "person")} | {
        ("appear", a) for a in animals} | {("leave", a) for a in animals}
    assert all(e["stream"] == "front_door" for e in events)

    later = Subscriber(broker, "bredos_npu/#", "homeassistant/#")  # a new client gets retained ones
    try:
        later.settle()
    finally:
        later.close()
    retained = {topic: payload for topic, payload, kept in later.messages if kept}
    assert retained[f"{base}/availability"] == "offline"
    assert retained[f"{base}/person/count"] == "1"
    assert all(retained[f"{base}/{a}/count"] == "0" for a in animals)
    assert f"{node}/person_count/config" in retained
    assert f"{base}/events" not in retained


def test_broker_problems_are_one_line(capfd, tmp_path) -> None:
    video = scenes_video(tmp_path / "porch.mp4")
    port = free_port()
    down = run_cli(capfd, "detect", video, *DETECT, "--mqtt", f"mqtt://127.0.0.1:{port}")
    assert down.code == EXIT_SOURCE
    assert down.err.strip().splitlines()[-1] == (
        f"bredos-npu: error: The MQTT broker mqtt://127.0.0.1:{port} could not be reached "
        "(Connection refused).")
    wrong = run_cli(capfd, "detect", video, *DETECT, "--mqtt", "http://127.0.0.1")
    assert wrong.code == EXIT_USAGE and "mqtt://[user:password@]host[:port]" in wrong.err
