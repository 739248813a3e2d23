"""One CLI grammar: global options anywhere, one-line usage errors, the same option names in
every command, progress bars with totals, through the real entry point."""

from __future__ import annotations

import ast
import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from cli_runner import run_child, run_cli, run_on_terminal
from conftest import CAT, DEFAULT_MODEL, IMAGES, LABELS, MODELS
from model_server import ModelServer

import bredos_npu
from bredos_npu.errors import EXIT_MODEL, EXIT_USAGE

NATIVE_LOG = "Created TensorFlow Lite XNNPACK delegate"  # TFLite's own line, shown only with --debug
SMALL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
OTHER = MODELS / "mobilenet_v1_0.5_160_quant.tflite"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(capfd, tmp_path, where):
    args = ["classify", "-b", "cpu", CAT]  # TFLite logs once per process: a child each
    native = run_child(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert native.returncode == 0 and NATIVE_LOG in native.stderr
    if where == "before":
        assert NATIVE_LOG not in run_child(*args).stderr
    missing = ["inspect", tmp_path / "nope.tflite"]
    failed = run_cli(capfd, *(["--debug", *missing] if where == "before" else [*missing, "--debug"]))
    assert failed.code == EXIT_MODEL and "Traceback (most recent call last)" in failed.err


@pytest.mark.parametrize("args", [
    ("--offline", "detect", "-m", "ssd-mobilenet-v1", "-b", "cpu", CAT),
    ("detect", "-m", "ssd-mobilenet-v1", "-b", "cpu", CAT, "--offline"),
    ("inspect", "ssd-mobilenet-v1", "--offline"),
    ("bench", "-m", "ssd-mobilenet-v1", "-b", "cpu", "--runs", "1", "--offline"),
])
def test_offline_before_or_after_the_command(capfd, tmp_path, monkeypatch, args):
    monkeypatch.setenv("BREDOS_NPU_CACHE", str(tmp_path / "cache"))
    with ModelServer([MODELS]) as server:
        monkeypatch.setenv("BREDOS_NPU_MODEL_BASE_URL", server.url)
        refused = run_cli(capfd, *args)
        assert server.requests == []
    assert refused.code == EXIT_MODEL, refused.err
    assert "ssd-mobilenet-v1 is not in the cache and offline mode is on" in refused.err


def test_global_options_are_declared_once_and_listed_by_every_command(capfd):
    for command in ("classify", "pose", "bench", "inspect", "doctor", "serve", "report", "quantize"):
        shown = run_cli(capfd, command, "--help")
        assert shown.code == 0
        assert shown.out.count("--debug") == 1 and shown.out.count("--offline") == 1, command
    nested = run_cli(capfd, "models", "pull", "--help")
    assert "--offline" in nested.out


@pytest.mark.parametrize(("args", "line"), [
    (("classify", "--zzz"), "bredos-npu classify: no such option '--zzz' (see bredos-npu classify --help)"),
    (("detect", "--forc"), "bredos-npu detect: no such option '--forc' (did you mean one of: '--force', "
                           "'--track'?) (see bredos-npu detect --help)"),
    (("quantize",), "bredos-npu quantize: missing argument 'MODEL' (see bredos-npu quantize --help)"),
    (("models", "pull"),
     "bredos-npu models pull: missing argument 'NAMES...' (see bredos-npu models pull --help)"),
    (("classify", "-b", "gpu"), "bredos-npu classify: invalid value for '-b' / '--backend': 'gpu' is not "
                                "one of 'auto', 'npu', 'cpu' (see bredos-npu classify --help)"),
    (("classify", "-k", "many"), "bredos-npu classify: invalid value for '-k' / '--top-k': 'many' is not "
                                 "a valid integer range (see bredos-npu classify --help)"),
    (("segment", "--parallel", "0"), "bredos-npu segment: invalid value for '--parallel': 0 is not in the "
                                     "range x>=1 (see bredos-npu segment --help)"),
    (("bench", "--json", "--csv", "-"), "bredos-npu bench: --json and --csv - both write to standard "
                                        "output: choose one (see bredos-npu bench --help)"),
    (("nope",), "bredos-npu: no such command 'nope' (see bredos-npu --help)"),
])
def test_usage_errors_are_one_line(capfd, args, line):
    outcome = run_cli(capfd, *args)
    assert (outcome.code, outcome.out, outcome.err) == (EXIT_USAGE, "", line + "\n")


@pytest.mark.parametrize("args", [("classify", "--fps", "2"), ("detect", "--track"),
                                  ("detect", "--zone", "door=0,0;9,0;9,9"), ("segment", "--retries", "3")])
def test_video_options_with_images_are_refused_not_ignored(capfd, args):
    command, flag = args[0], args[1]
    outcome = run_cli(capfd, *args, CAT)
    assert (outcome.code, outcome.out) == (EXIT_USAGE, "")
    assert outcome.err == f"bredos-npu {command}: {flag} is for a video source, not for images " \
                          f"(see bredos-npu {command} --help)\n"


def test_task_options_are_spelled_from_their_names(capfd):
    shown = run_cli(capfd, "detect", "--help").out
    assert "--max, --max-results INTEGER RANGE" in shown and "--threshold FLOAT" in shown
    assert "-k, --top-k" in run_cli(capfd, "classify", "--help").out


@pytest.mark.parametrize(("args", "message"), [
    (("inspect", "--delegate", "lib.so"),
     "--delegate is for --runtime: without it inspect loads no delegate"),
    (("inspect", "--compare", "r.json", "--runtime"),
     "--compare lists differences only: leave out --plot and --runtime"),
    (("bench", "-b", "cpu", "--delegate", "lib.so"), "--delegate is for the npu backend: add -b npu"),
])
def test_options_a_command_would_ignore_are_refused(capfd, args, message):
    outcome = run_cli(capfd, *args)
    assert outcome.code == EXIT_USAGE
    assert outcome.err == f"bredos-npu {args[0]}: {message} (see bredos-npu {args[0]} --help)\n"


def test_no_arguments_still_shows_the_help(capfd):
    outcome = run_cli(capfd)
    assert outcome.err.startswith("Usage: bredos-npu [OPTIONS] COMMAND")
    assert "classify" in outcome.err


def test_every_task_takes_csv_and_only_tasks_with_classes_take_labels(capfd):
    for task in ("classify", "detect", "segment", "pose"):
        shown = run_cli(capfd, task, "--help").out
        assert "--csv FILE" in shown and "-m, --model" in shown and "-b, --backend" in shown
        assert ("--labels" in shown) == (task != "pose"), task


def test_labels_are_l_wherever_a_label_file_is_taken(capfd):
    for command in (("classify",), ("detect",), ("segment",), ("quantize",), ("models", "import")):
        assert "-l, --labels" in run_cli(capfd, *command, "--help").out, command


def test_inspect_defaults_to_the_bundled_model_and_takes_m(capfd):
    default = run_cli(capfd, "inspect", "--json")
    named = run_cli(capfd, "inspect", "-m", MODELS / "split_concat.tflite", "--json")
    assert default.code == named.code == 0
    assert json.loads(default.out)["model"].endswith("mobilenet_v2_1.0_224_quant.tflite")
    assert json.loads(named.out)["model"].endswith("split_concat.tflite")
    both = run_cli(capfd, "inspect", SMALL, "-m", OTHER)
    assert both.code == EXIT_USAGE and both.err.count("\n") == 1


def test_bench_measures_each_model_on_each_backend(capfd, tmp_path, fake_system, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))  # no NPU there
    table = tmp_path / "bench.csv"
    outcome = run_cli(capfd, "bench", "-m", SMALL, "-m", OTHER, "-b", "cpu", "-b", "npu", "--runs", "2",
                      "--warmup", "0", "--json", "--csv", table)
    assert outcome.code == 0, outcome.err
    documents = json.loads(outcome.out)["models"]
    assert [d["model"] for d in documents] == [str(SMALL), str(OTHER)]
    for document in documents:
        cpu, npu = document["backends"]
        assert len(cpu["latencies_ms"]) == 2 and not npu["available"]
    with table.open() as handle:
        rows = [(r["model"], r["backend"]) for r in csv.DictReader(handle)]
    assert rows == [(str(SMALL), "cpu"), (str(SMALL), "npu"), (str(OTHER), "cpu"), (str(OTHER), "npu")]


def final_frame(terminal: str) -> str:
    """The last bar tqdm drew before clearing its line."""
    frames = [frame for frame in re.split(r"[\r\n]", terminal) if "|" in frame]
    assert frames, terminal
    return frames[-1]


def test_bench_bar_reaches_its_total_when_the_npu_is_missing(fake_system, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    code, terminal = run_on_terminal("bench", "-b", "cpu", "-b", "npu", "--runs", "5", "--warmup", "0")
    assert code == 0, terminal
    last = final_frame(terminal)
    assert " 10/10 " in last and "100%" in last and last.startswith("npu")


def test_folder_bar_shows_the_total_and_the_time_left(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        shutil.copy(IMAGES / "grace_hopper.jpg", folder / f"{index}.jpg")
    code, terminal = run_on_terminal("classify", "-b", "cpu", folder, "--jsonl", tmp_path / "out.jsonl")
    assert code == 0, terminal
    last = final_frame(terminal)
    assert re.search(r"100%\|.*\| 3/3 \[\d\d:\d\d<\d\d:\d\d", last), last


# --- text for people ---------------------------------------------------------------------------

PETS = IMAGES / "cats_and_dogs.jpg"  # many classes above 0.0%
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"


def test_classify_rows_line_up_past_rank_nine_without_zero_rows_and_with_long_labels_cut(capfd, tmp_path):
    labels = (LABELS / "imagenet_labels.txt").read_text().splitlines()
    reference = bredos_npu.load(DEFAULT_MODEL, backend="cpu").classify(PETS, top_k=40)
    above_zero = sum(1 for c in reference if round(c.score * 100, 1) > 0)
    labels[reference[0].index] = "Siberian husky " + "with a very long label " * 5
    long_labels = tmp_path / "labels.txt"
    long_labels.write_text("\n".join(labels) + "\n")
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "40", "-l", long_labels, PETS)
    assert outcome.code == 0, outcome.err
    rows = [line for line in outcome.out.splitlines() if re.match(r"^ +\d+\. ", line)]
    assert 10 <= len(rows) == above_zero < 40 and not any(" 0.0%" in row for row in rows)
    assert len({row.index("%") for row in rows}) == 1  # the score column stays put
    assert len({row.index(".") for row in rows}) == 1  # so do the ranks, 1-9 and 10+
    assert rows[0].startswith("   1. Siberian husky with a very long") and "\u2026" in rows[0]
    assert max(len(row) for row in rows) < 80
    assert re.search(rf"^  \({40 - len(rows)} more classes at 0\.0%\)$", outcome.out, re.MULTILINE)


def test_pose_says_no_person_found_in_text_and_json(capfd):
    flower_photo, squat = IMAGES / "sunflower.bmp", IMAGES / "squat.bmp"
    text = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", flower_photo)
    assert text.code == 0, text.err
    assert "no person found" in text.out and "left_ankle" not in text.out
    data = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", flower_photo, squat, "--json")
    flower, person = json.loads(data.out)["results"]
    assert flower["person"] is False and person["person"] is True
    assert len(flower["keypoints"]) == len(person["keypoints"]) == 17
    shown = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", squat).out
    assert "left_ankle" in shown and "no person found" not in shown


# --- layers ------------------------------------------------------------------------------------

PACKAGE = Path(bredos_npu.__file__).parent
API_LAYERS = ("tasks", "runtime", "models", "system")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+|`bredos-npu\b")  # --top-k, `bredos-npu doctor`


def string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module but its docstrings (which may describe the CLI)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_api_layers_speak_no_cli():
    found = []
    for layer in API_LAYERS:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            tree_imports = [line for line in path.read_text(encoding="utf-8").splitlines()
                            if re.match(r"\s*(from|import) bredos_npu\.cli\b", line)]
            found += [f"{path.relative_to(PACKAGE)}: {line.strip()}" for line in tree_imports]
            found += [f"{path.relative_to(PACKAGE)}:{line}: {text!r}" for line, text in string_constants(path)
                      if FLAG.search(text)]
    assert found == []


def test_the_layer_check_sees_a_flag(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docstrings may say --help."""\nfix = "pass --force to overwrite it"\n')
    flagged = [text for _, text in string_constants(sample) if FLAG.search(text)]
    assert flagged == ["pass --force to overwrite it"]


# --- API option names in the CLI's sentences -----------------------------------------------------

def test_a_task_options_name_becomes_the_flag_its_command_declares():
    from bredos_npu.cli.errors import cli_fact
    from bredos_npu.cli.tasks import task_command
    from bredos_npu.errors import UsageError
    from bredos_npu.tasks import registry

    checked = 0
    for task in registry.tasks():
        declared = {param.name: param.opts for param in task_command(task).params}
        for option in task.options:
            with pytest.raises(UsageError) as caught:
                task.bind({option.name: -1})  # below every task option's minimum
            assert caught.value.fact.startswith(f"{option.name} must be")
            assert cli_fact(caught.value).split()[0] in declared[option.name]
            checked += 1
    assert checked >= 3  # top_k, threshold, max_results


def test_an_api_option_without_a_flag_keeps_the_apis_words():
    from bredos_npu.cli.errors import cli_fact
    from bredos_npu.errors import UsageError
    from bredos_npu.runtime.pipeline import run_pipeline

    with pytest.raises(UsageError) as caught:  # decoders: the API's alone, no command sets it
        next(run_pipeline(None, [], lambda model, prepared: prepared, decoders=10**6))
    assert caught.value.data["option"] == "decoders"
    assert cli_fact(caught.value) == caught.value.fact
