"""`bredos-npu serve` as clients see it: real servers on 127.0.0.1, real clients, real models.

References are independent of the server: the Python API and the CLI on the same images, the
deepstack-python client (Home Assistant's), and Frigate's deepstack detector code path.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from cli_runner import run_cli
from conftest import CAT, IMAGES, LABELS, MODELS
from PIL import Image
from serve_process import ServeProcess

import bredos_npu

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
PETS = IMAGES / "cats_and_dogs.jpg"
SQUAT = IMAGES / "squat.bmp"
KEY = "correct horse battery staple"
TIMEOUT = 10  # seconds, for every request a test makes


@pytest.fixture(scope="module")
def server():
    """One server with a model for every task, an API key and one interpreter of one thread."""
    with ServeProcess("-m", f"{SSD}=detect", "-m", f"{DEEPLAB}=segment", "-m", MOVENET,
                      "-m", "mobilenet-v2", "--api-key", KEY, "--threads", "1") as running:
        yield running


@pytest.fixture(scope="module")
def api_detector():
    return bredos_npu.load(SSD, backend="cpu", threads=1)


def post(url: str, path: str, image: bytes | None = None, timeout: float = TIMEOUT, **fields: str):
    files = {"image": ("image.jpg", image)} if image is not None else None
    return requests.post(url + path, files=files, data=fields, timeout=timeout)


def jpeg(path, size: tuple[int, int] | None = None) -> bytes:
    picture = Image.open(path).convert("RGB")
    if size:
        picture = picture.resize(size)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=95)
    return out.getvalue()


# --- DeepStack clients ------------------------------------------------------------------------

def test_deepstack_python_client_gets_the_api_boxes(server, api_detector):
    from deepstack.core import DeepstackException, DeepstackObject

    port = int(server.url.rsplit(":", 1)[1])
    client = DeepstackObject(ip="127.0.0.1", port=port, api_key=KEY, timeout=TIMEOUT, min_confidence=0.4)
    predictions = client.detect(PETS.read_bytes())
    expected = api_detector.detect(PETS, threshold=0.4)
    assert len(predictions) == len(expected) >= 4
    for got, want in zip(predictions, expected, strict=True):
        assert got["label"] == want.label
        assert got["confidence"] == pytest.approx(want.score, abs=1e-3)
        for key, value in zip(("x_min", "y_min", "x_max", "y_max"), want.bbox, strict=True):
            assert isinstance(got[key], int) and abs(got[key] - value) <= 1
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)
    custom = DeepstackObject(ip="127.0.0.1", port=port, api_key=KEY, timeout=TIMEOUT, min_confidence=0.4,
                             custom_model=SSD.stem).detect(PETS.read_bytes())
    assert [p["label"] for p in custom] == [p["label"] for p in predictions]
    with pytest.raises(DeepstackException, match="401"):
        DeepstackObject(ip="127.0.0.1", port=port, api_key="wrong", timeout=TIMEOUT).detect(PETS.read_bytes())
    with pytest.raises(DeepstackException, match="404"):
        DeepstackObject(ip="127.0.0.1", port=port, api_key=KEY, timeout=TIMEOUT,
                        custom_model="no-such-model").detect(PETS.read_bytes())


def frigate_detect_raw(url: str, tensor_input: np.ndarray, labels: dict[int, str],
                       api_timeout: float) -> np.ndarray:
    """Frigate's DeepStack.detect_raw (frigate/detectors/plugins/deepstack.py), as it is."""
    image_data = np.squeeze(tensor_input).astype(np.uint8)
    image = Image.fromarray(image_data)
    w, h = image.size
    with io.BytesIO() as output:
        image.save(output, format="JPEG")
        image_bytes = output.getvalue()
    response = requests.post(url, data={"api_key": KEY}, files={"image": image_bytes},
                             timeout=api_timeout)
    response_json = response.json()
    detections = np.zeros((20, 6), np.float32)
    if response_json.get("predictions") is None:
        return detections

    def get_label_index(label_value: str) -> int:
        if label_value.lower() == "truck":
            label_value = "car"
        for index, value in labels.items():
            if value == label_value.lower():
                return index
        return -1

    for i, detection in enumerate(response_json.get("predictions")):
        if detection["confidence"] < 0.4:
            break
        label = get_label_index(detection["label"])
        if label < 0:
            break
        detections[i] = [label, float(detection["confidence"]), detection["y_min"] / h,
                         detection["x_min"] / w, detection["y_max"] / h, detection["x_max"] / w]
    return detections


def test_frigate_deepstack_detector(server, api_detector):
    """What Frigate's deepstack detector sends and how it reads the reply.

    Frigate's default api_timeout is 0.1 s. Here SSD MobileNet V1 runs on one x86 CPU thread in
    ~60-120 ms per invoke (the NPU is the target), so the test sets Frigate's api_timeout option
    to 2 s; benchmarks/bench_serve.py measures the 320x320 latency itself.
    """
    labels = dict(enumerate((LABELS / "coco_labels.txt").read_text().splitlines()))
    tensor = np.asarray(Image.open(PETS).convert("RGB").resize((320, 320)))[np.newaxis]
    for _ in range(3):
        rows = frigate_detect_raw(server.url + "/v1/vision/detection", tensor, labels, api_timeout=2.0)
    found = rows[rows[:, 1] > 0]
    assert len(found) >= 3 and {labels[int(r[0])] for r in found} <= {"cat", "dog"}
    assert np.all((found[:, 2:] >= 0) & (found[:, 2:] <= 1))
    # The same 320x320 JPEG through the API: the same objects at the same normalised places.
    reference = api_detector.detect(Image.open(io.BytesIO(jpeg_of(tensor))), threshold=0.4)
    assert len(found) == len(reference)
    for row, want in zip(found, reference, strict=True):
        assert labels[int(row[0])] == want.label
        assert row[3] == pytest.approx(want.bbox.xmin / 320, abs=1 / 320)


def jpeg_of(tensor: np.ndarray) -> bytes:
    with io.BytesIO() as output:
        Image.fromarray(np.squeeze(tensor).astype(np.uint8)).save(output, format="JPEG")
        return output.getvalue()


def test_deepstack_reply_fields_and_min_confidence(server):
    reply = post(server.url, "/v1/vision/detection", PETS.read_bytes(), api_key=KEY,
                 min_confidence="0.6").json()
    assert reply["success"] is True and reply["code"] == 200
    assert reply["count"] == len(reply["predictions"]) >= 1
    assert all(p["confidence"] >= 0.6 for p in reply["predictions"])
    assert reply["message"].startswith("Found ") and "cat" in reply["message"]
    assert isinstance(reply["inferenceMs"], int) and reply["processMs"] >= reply["inferenceMs"]
    width, height = Image.open(PETS).size
    for p in reply["predictions"]:
        assert 0 <= p["x_min"] < p["x_max"] <= width and 0 <= p["y_min"] < p["y_max"] <= height


@pytest.mark.parametrize(("fields", "image", "status", "error"), [
    ({"api_key": KEY}, None, 400, "No valid image file found"),
    ({"api_key": KEY}, b"not an image at all", 400, "not an image"),
    ({"api_key": KEY}, PETS.read_bytes()[:3000], 400, "truncated"),
    ({"api_key": KEY, "min_confidence": "2"}, b"x", 400, "greater than 1"),
    ({"api_key": KEY, "min_confidence": "lots"}, b"x", 400, "Invalid value for min_confidence"),
    ({"api_key": "wrong"}, b"x", 401, "Incorrect api key"),
    ({}, b"x", 401, "Incorrect api key"),
])
def test_deepstack_errors_are_json(server, fields, image, status, error):
    response = post(server.url, "/v1/vision/detection", image, **fields)
    assert response.status_code == status
    body = response.json()
    assert body == {"success": False, "error": body["error"], "code": status}
    assert error in body["error"] and "Traceback" not in response.text


def test_unknown_routes_and_methods_are_json(server):
    missing = requests.get(server.url + "/v1/nothing", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json()["success"] is False
    wrong_method = requests.get(server.url + "/v1/vision/detection", timeout=TIMEOUT)
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == 405
    custom = post(server.url, "/v1/vision/custom/nope", PETS.read_bytes(), api_key=KEY)
    assert custom.status_code == 404 and "Unknown model 'nope'" in custom.json()["error"]
    listed = requests.post(server.url + "/v1/vision/custom/list", data={"api_key": KEY}, timeout=TIMEOUT)
    assert listed.json() == {"success": True, "models": [SSD.stem], "code": 200}


# --- native API -------------------------------------------------------------------------------

def test_native_detect_is_the_cli_json(server, capfd):
    outcome = run_cli(capfd, "detect", PETS, "-m", SSD, "--threshold", "0.4", "--json", "--backend", "cpu",
                      "--threads", "1")
    cli = json.loads(outcome.out)["results"][0]
    reply = requests.post(server.url + "/v1/detect?threshold=0.4", data=PETS.read_bytes(),
                          headers={"X-API-Key": KEY, "Content-Type": "image/jpeg"}, timeout=TIMEOUT).json()
    assert reply["task"] == "detect" and reply["backend"] == "cpu"
    assert (reply["width"], reply["height"]) == Image.open(PETS).size
    assert [d["label"] for d in reply["detections"]] == [d["label"] for d in cli["detections"]]
    for got, want in zip(reply["detections"], cli["detections"], strict=True):
        assert got["score"] == pytest.approx(want["score"], abs=1e-3)
        assert got["box"] == pytest.approx(want["box"], abs=1.0)


def test_native_classify_segment_pose(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    classes = requests.post(server.url + "/v1/classify?top_k=3", files={"image": CAT.read_bytes()},
                            headers=headers, timeout=TIMEOUT).json()["classes"]
    assert len(classes) == 3 and classes[0]["index"] == 286  # Egyptian cat
    # The task's own options (from the registry) reach it: max_results caps detect's answer.
    found = {cap: requests.post(server.url + f"/v1/detect?threshold=0.3{cap}", files={"image": jpeg(PETS)},
                                headers=headers, timeout=TIMEOUT).json()["detections"]
             for cap in ("", "&max_results=1")}
    assert len(found[""]) >= 2 and found["&max_results=1"] == found[""][:1]
    segment = requests.post(server.url + "/v1/segment?mask=1", files={"image": jpeg(PETS)},
                            headers=headers, timeout=TIMEOUT).json()
    mask = Image.open(io.BytesIO(__import__("base64").b64decode(segment["mask"])))
    assert mask.size == Image.open(PETS).size and mask.mode == "RGBA"
    assert segment["classes"][0]["share"] > 0.05
    pose = requests.post(server.url + "/v1/pose", files={"image": SQUAT.read_bytes()}, headers=headers,
                         timeout=TIMEOUT).json()
    reference = bredos_npu.load(MOVENET, backend="cpu").pose(SQUAT)
    assert [k["name"] for k in pose["keypoints"]] == [k.name for k in reference]
    assert [k["x"] for k in pose["keypoints"]] == pytest.approx([k.x for k in reference], abs=1.0)


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/v1/pose?model=mobilenet-v2", 400, "served for classify"),
    ("/v1/detect?model=missing", 404, "Unknown model"),
    ("/v1/classify?top_k=0", 400, "top_k must be 1 or more"),
    ("/v1/detect?threshold=7", 400, "threshold must be between 0 and 1"),
    ("/v1/classify?top_k=many", 400, "top_k must be 1 or more, not many"),
    ("/v1/detect?max_results=0", 400, "max_results must be 1 or more"),
])
def test_native_errors(server, path, status, error):
    response = requests.post(server.url + path, files={"image": CAT.read_bytes()},
                             headers={"X-API-Key": KEY}, timeout=TIMEOUT)
    assert response.status_code == status and error in response.json()["error"]


def test_errors_of_the_api_carry_their_reason(server):
    response = requests.post(server.url + "/v1/classify", data=b"GIF89a broken", timeout=TIMEOUT,
                             headers={"X-API-Key": KEY})
    assert response.status_code == 400 and response.json()["reason"] == "not_an_image"


def test_models_status_health_ready_metrics(server):
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"X-API-Key": KEY}
    ready_ms = int(re.search(r"ready (\d+) ms after the models loaded", "\n".join(server.lines)).group(1))
    assert ready_ms < 1000  # serving starts well under a second after the models are loaded
    assert requests.get(server.url + "/health", timeout=TIMEOUT).json() == {"status": "ok"}
    assert requests.get(server.url + "/ready", timeout=TIMEOUT).json()["ready"] is True
    assert requests.get(server.url + "/v1/status", timeout=TIMEOUT).status_code == 401
    models = requests.get(server.url + "/v1/models", headers=headers, timeout=TIMEOUT).json()["models"]
    assert {m["task"] for m in models} == {"classify", "detect", "segment", "pose"}
    status = requests.get(server.url + "/v1/status", headers=headers, timeout=TIMEOUT).json()
    assert status["queue"]["capacity"] == 16 and status["queue"]["depth"] == 0
    counters = status["counters"]
    assert counters["requests"] >= counters["status_2xx"] >= 1 and counters["status_4xx"] >= 1
    deadline = time.monotonic() + TIMEOUT
    while status["doctor"]["verdict"] == "checking" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = requests.get(server.url + "/v1/status", headers=headers, timeout=TIMEOUT).json()
    assert status["doctor"] == {"verdict": bredos_npu.diagnose().verdict, "npu_ready": False}
    for model in status["models"]:
        assert model["backend"]["name"] == "cpu" and model["npu_share"] == 0.0
        assert model["backend"]["nodes"]["model_nodes"] > 0 and model["predicted"].startswith("NPU: ")
    post(server.url, "/v1/vision/detection", PETS.read_bytes(), api_key=KEY)
    text = requests.get(server.url + "/metrics", headers=headers, timeout=TIMEOUT).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    served = [s for s in families["bredos_npu_requests"].samples
              if s.labels.get("endpoint") == "/v1/vision/detection" and s.labels.get("status") == "200"]
    assert served and served[0].value >= 1
    assert families["bredos_npu_queue_capacity"].samples[0].value == 16
    inference = [s for s in families["bredos_npu_inference_seconds"].samples if s.name.endswith("_count")]
    assert any(s.labels["backend"] == "cpu" and s.value >= 1 for s in inference)


def test_openapi_describes_every_route_offline(server):
    from bredos_npu.serve.app import ENDPOINTS

    description = requests.get(server.url + "/openapi.json", timeout=TIMEOUT).json()
    assert description["openapi"].startswith("3.")
    assert set(description["paths"]) == {*ENDPOINTS, "/v1/vision/custom/{model}"}
    page = requests.get(server.url + "/", timeout=TIMEOUT).text
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    script = requests.get(server.url + "/static/app.js", timeout=TIMEOUT).text
    assert "http://" not in script and "https://" not in script


def test_one_log_line_per_request_and_never_the_key(server):
    before = len(server.lines)
    post(server.url, "/v1/vision/detection?api_key=" + KEY.replace(" ", "+"), PETS.read_bytes())
    post(server.url, "/v1/vision/detection", PETS.read_bytes(), api_key=KEY)
    time.sleep(0.2)
    new = server.lines[before:]
    requests_logged = [line for line in new if "POST /v1/vision/detection" in line]
    assert len(requests_logged) == 2 and all(" INFO " in line for line in requests_logged)
    assert f"model={SSD.stem}" in requests_logged[1] and " 200 " in requests_logged[1]
    assert not any("horse" in line for line in server.lines)


def test_soak(server):
    """A short bounded soak: 3 clients for 6 s over every endpoint; all answered, memory flat."""
    headers = {"X-API-Key": KEY}
    calls = [("/v1/vision/detection", {"image": jpeg(PETS, (640, 480))}, {"api_key": KEY}),
             ("/v1/classify", {"image": CAT.read_bytes()}, {}),
             ("/v1/pose", {"image": SQUAT.read_bytes()}, {})]
    statuses: list[int] = []
    rss: list[int] = []
    stop_at = time.monotonic() + 6

    def client(offset: int) -> None:
        with requests.Session() as session:
            number = offset
            while time.monotonic() < stop_at:
                path, files, data = calls[number % len(calls)]
                statuses.append(session.post(server.url + path, files=files, data=data, headers=headers,
                                             timeout=TIMEOUT).status_code)
                number += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        rss.append(server.rss_kib())
        time.sleep(0.5)
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(statuses) >= 30 and set(statuses) == {200}
    warm = max(rss[2:4])
    assert max(rss[-3:]) < warm + 30 * 1024, f"RSS grew from {warm} to {max(rss)} KiB"
    status = requests.get(server.url + "/v1/status", headers=headers, timeout=TIMEOUT).json()
    assert status["queue"]["depth"] == 0


# --- limits and faults ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def limited():
    """One interpreter, a queue of one, small bodies and a short deadline."""
    with ServeProcess("-m", f"{DEEPLAB}=segment", "-m", f"{SSD}=detect", "--threads", "1", "--queue", "1",
                      "--max-body", "200KB", "--timeout", "2") as running:
        yield running


def test_body_over_the_limit_is_413(limited):
    big = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    data = io.BytesIO()
    Image.fromarray(big).save(data, format="PNG")
    assert len(data.getvalue()) > 200 * 1024
    declared = post(limited.url, "/v1/vision/detection", data.getvalue())
    assert declared.status_code == 413 and "200 KB" in declared.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams
        for _ in range(40):
            yield b"x" * 16384

    streamed = requests.post(limited.url + "/v1/detect", data=chunks(), timeout=TIMEOUT)
    assert streamed.status_code == 413 and streamed.json()["code"] == 413


def test_full_queue_is_503_with_retry_after(limited):
    image = jpeg(PETS)
    barrier = threading.Barrier(6)
    answers: list[requests.Response] = []

    def client() -> None:
        barrier.wait(TIMEOUT)
        answers.append(requests.post(limited.url + "/v1/segment", files={"image": image}, timeout=TIMEOUT))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    busy = [a for a in answers if a.status_code == 503]
    assert len(answers) == 6 and busy and {a.status_code for a in answers} <= {200, 503}
    assert busy[0].headers["Retry-After"] == "1" and busy[0].json()["code"] == 503


def raw_request(url: str, path: str, body: bytes, declared: int) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + body)
    return sock


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, read whole (headers and body may come apart)."""
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
            re.search(rb"content-length: (\d+)", answer.lower()).group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_slow_upload_gets_408_and_a_disconnect_frees_everything(limited):
    image = jpeg(PETS)
    slow = raw_request(limited.url, "/v1/detect", image[:1000], len(image))
    answer = read_response(slow).decode()  # the server's deadline is 2 s; the socket's is TIMEOUT
    slow.close()
    assert answer.startswith("HTTP/1.1 408") and '"code":408' in answer
    for _ in range(3):  # clients that vanish mid-upload
        raw_request(limited.url, "/v1/detect", image[:5000], len(image)).close()
    deadline = time.monotonic() + TIMEOUT
    status = requests.get(limited.url + "/v1/status", timeout=TIMEOUT).json()
    while status["counters"].get("client_disconnects", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = requests.get(limited.url + "/v1/status", timeout=TIMEOUT).json()
    assert status["queue"]["depth"] == 0 and status["counters"]["client_disconnects"] == 3
    ok = requests.post(limited.url + "/v1/detect", data=image, timeout=TIMEOUT)
    assert ok.status_code == 200, ok.text
    assert ok.json()["detections"]


def test_uploads_in_progress_are_bounded(limited):
    """--queue 1: at most 4 x 1 + 4 = 8 requests in progress, slow uploads included."""
    image = jpeg(PETS)
    slow = [raw_request(limited.url, "/v1/detect", image[:100], len(image)) for _ in range(8)]
    time.sleep(0.3)
    refused = requests.post(limited.url + "/v1/detect", data=image, timeout=TIMEOUT)
    for sock in slow:
        sock.close()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "8 requests are in progress" in refused.json()["error"]


def test_sigterm_finishes_in_flight_requests_then_exits_0():
    with ServeProcess("-m", "mobilenet-v2", "--threads", "1") as running:
        image = CAT.read_bytes()
        sock = raw_request(running.url, "/v1/classify", image[: len(image) // 2], len(image))
        time.sleep(0.2)
        running.process.terminate()
        time.sleep(0.5)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1])), timeout=2).close()
        sock.sendall(image[len(image) // 2:])
        answer = read_response(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200") and b'"index":286' in answer
        assert running.process.wait(TIMEOUT) == 0


@pytest.mark.parametrize(("args", "code", "message"), [
    (("-m", MODELS / "missing.tflite"), 4, "missing.tflite"),
    (("-m", f"{SSD}=pose"), 4, "not a single-pose model"),
    (("-m", f"{SSD}=dance"), 2, "Unknown task"),
    (("--max-body", "lots"), 2, "not a size"),
    (("--api-key", " "), 2, "API key is empty"),
])
def test_start_up_failures_are_one_line(capfd, args, code, message):
    outcome = run_cli(capfd, "serve", "--port", "0", *args)
    assert outcome.code == code and message in outcome.err
    assert "Traceback" not in outcome.err


def test_a_model_that_fails_to_load_stops_the_server(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(SSD.read_bytes()[:40000])
    starting = ServeProcess("-m", broken)
    assert starting.wait_exit() == 4
    errors = [line for line in starting.lines if "error" in line]
    assert len(errors) == 1 and "broken.tflite" in errors[0]


def test_missing_extra_is_exit_8():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['uvicorn'] = None\n"
                           "from bredos_npu.cli import main; main(['serve'])"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 8
    assert done.stderr.strip() == ("bredos-npu: error: bredos-npu serve needs uvicorn: "
                                   "pip install 'bredos-npu[serve]'.")


def test_delegate_failure_moves_the_model_to_the_cpu(ready_board, delegates, tmp_path):
    trigger = tmp_path / "fail-now"
    env = {"BREDOS_NPU_ROOT": str(ready_board.base), "BREDOS_NPU_DELEGATE": str(delegates["failing"]),
           "BREDOS_TEST_DELEGATE_FAIL": str(trigger)}
    with ServeProcess("-m", "mobilenet-v2", "--threads", "1", env=env) as running:
        before = requests.get(running.url + "/v1/status", timeout=TIMEOUT).json()["models"][0]
        assert before["backend"]["name"] == "npu" and before["backend"]["nodes"]["npu_nodes"] >= 1
        trigger.write_text("fail")
        reply = requests.post(running.url + "/v1/classify", files={"image": CAT.read_bytes()},
                              timeout=TIMEOUT)
        assert reply.status_code == 200, reply.text
        assert reply.json()["backend"] == "cpu" and reply.json()["classes"][0]["index"] == 286
        after = requests.get(running.url + "/v1/status", timeout=TIMEOUT).json()["models"][0]
        assert after["backend"]["name"] == "cpu" and after["backend"]["requested"] == "auto"
        assert "failed during inference" in after["backend"]["fallback_reason"]
    assert any("moving it to the CPU" in line for line in running.lines)
    # Asked for the NPU only: no fallback, a 500 with one sentence.
    # Failing from the first run on (the warm-up at start): on the CPU before the first request.
    with ServeProcess("-m", "mobilenet-v2", "--threads", "1", env=env) as started_broken:
        model = requests.get(started_broken.url + "/v1/status", timeout=TIMEOUT).json()["models"][0]
        assert model["backend"]["name"] == "cpu" and "first run" in model["backend"]["fallback_reason"]
    trigger.unlink()
    with ServeProcess("-m", "mobilenet-v2", "--threads", "1", "--backend", "npu", env=env) as strict:
        trigger.write_text("fail")
        reply = requests.post(strict.url + "/v1/classify", files={"image": CAT.read_bytes()}, timeout=TIMEOUT)
        assert reply.status_code == 500 and reply.json()["code"] == 500
        assert "failed on this image" in reply.json()["error"] and "Traceback" not in reply.text


# --- the web page in a real browser -------------------------------------------------------------

ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored; CI keeps the screenshots there
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True,
            timeout=30_000, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(20_000)
        outside: list[str] = []
        context.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                   else outside.append(r.url))
        yield context
        context.close()
        assert not outside, f"the page fetched from outside the server: {outside}"


def open_page(browser, url: str):
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelectorAll('#model option').length >= 4")
    return page


def test_web_page_draws_the_detections(server, browser, api_detector):
    page = open_page(browser, server.url)
    page.select_option("#model", SSD.stem)
    page.fill("#threshold", "0.4")
    page.set_input_files("#file", str(PETS))
    page.wait_for_selector("body[data-state=done]")
    drawn = page.evaluate("window.bredosDrawn")
    expected = api_detector.detect(PETS, threshold=0.4)
    assert [d["label"] for d in drawn] == [d.label for d in expected]
    for box, want in zip(drawn, expected, strict=True):
        assert box["xmin"] == pytest.approx(want.bbox.xmin, abs=1) and box["kind"] == "box"
    # The best box's left edge, halfway down, is painted in its colour.
    best = drawn[0]
    pixel = page.evaluate("([x, y]) => Array.from(document.getElementById('canvas').getContext('2d')"
                          ".getImageData(x, y, 1, 1).data)",
                          [round(best["xmin"]), round((best["ymin"] + best["ymax"]) / 2)])
    colour = best["colour"].lstrip("#")
    assert pixel[:3] == [int(colour[i:i + 2], 16) for i in (0, 2, 4)]
    assert page.locator("#results li").count() == len(expected)
    assert "CPU" in page.inner_text("#timings") and "inference" in page.inner_text("#timings")
    page.wait_for_function("!document.getElementById('verdict').textContent.startsWith('checking')")
    assert page.inner_text("#verdict") == bredos_npu.diagnose().verdict
    assert page.locator("#models tbody tr").count() == 4
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-page-detect.png"), full_page=True)
    page.close()


def test_web_page_draws_keypoints_and_masks(server, browser):
    page = open_page(browser, server.url)
    page.select_option("#model", MOVENET.stem)
    page.set_input_files("#file", str(SQUAT))
    page.wait_for_selector("body[data-state=done]")
    drawn = page.evaluate("window.bredosDrawn")
    assert sum(d["kind"] == "keypoint" for d in drawn) >= 10 and any(d["kind"] == "bone" for d in drawn)
    page.evaluate("document.body.dataset.state = ''")
    page.select_option("#model", DEEPLAB.stem)  # runs the same image again on the segmenter
    page.wait_for_selector("body[data-state=done]")
    assert page.evaluate("window.bredosDrawn")[0]["kind"] == "mask"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-page-segment.png"), full_page=True)
    page.close()


def test_without_models_it_serves_the_zoo_detector_and_the_bundled_classifier(tmp_path):
    """No -m: the zoo's default detector (fetched from a local mirror here) and the classifier."""
    from model_server import ModelServer

    with ModelServer([MODELS, LABELS]) as mirror:
        env = {"BREDOS_NPU_MODEL_BASE_URL": mirror.url, "BREDOS_NPU_CACHE": str(tmp_path / "cache"),
               "BREDOS_NPU_OFFLINE": ""}
        with ServeProcess("--threads", "1", env=env) as running:
            models = requests.get(running.url + "/v1/models", timeout=TIMEOUT).json()["models"]
            assert [(m["name"], m["task"]) for m in models] == [("ssd-mobilenet-v1", "detect"),
                                                                  ("mobilenet-v2", "classify")]
            reply = post(running.url, "/v1/vision/detection", PETS.read_bytes()).json()
            assert reply["success"] and {p["label"] for p in reply["predictions"]} == {"cat", "dog"}
