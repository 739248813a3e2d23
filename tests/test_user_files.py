"""The user's files: never replaced unless asked, never lost, whatever happens during a run.

Outputs are checked the way they can go wrong for real: device nodes, FIFOs, sockets and
symbolic links at the output path, files created by someone else while a run is going (the child
is paused with SIGSTOP at a known moment), folders removed mid-run, full file systems, stop
signals, non-UTF-8 file names and concurrent `models import` processes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli
from conftest import CAT, IMAGES, MODELS
from userfiles import (
    finish,
    image_folder,
    part_files,
    paused,
    records_in_part,
    run,
    start,
    wait_until,
    without_file_permission_override,
)

from bredos_npu.errors import EXIT_IMAGE, EXIT_OUTPUT, EXIT_USAGE, OutputError
from bredos_npu.outputs import AtomicFile, OutputConflict, atomic_open

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
FAST = ("-b", "cpu", "-t", "1", "-k", "1")


def jsonl_images(path):
    return [json.loads(line)["image"] for line in path.read_text().splitlines()]


# --- 1. Only regular files are written ---------------------------------------------------------

def _device(tmp_path):
    """A private copy of /dev/null (as root: a broken build must not damage the real one);
    /dev/null itself where mknod is not permitted, since then nothing can replace it either."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return "/dev/null"
    return path


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _socket(tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize("make, kind", [
    (_device, "a character device"),
    (_fifo, "a FIFO (named pipe)"),
    (_socket, "a socket"),
])
def test_special_files_are_refused_even_with_force(capfd, tmp_path, make, kind):
    target = make(tmp_path)
    before = os.stat(target)
    outcome = run_cli(capfd, "classify", *FAST, CAT, "--csv", target, "--force")
    assert outcome.code == EXIT_OUTPUT
    assert f"{target} is {kind}, not a regular file" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    after = os.stat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino


def test_a_symbolic_link_is_written_through_and_kept(capfd, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "out.jsonl"
    link.symlink_to(elsewhere / "real.jsonl")  # dangling until the run writes it
    assert run_cli(capfd, "classify", *FAST, CAT, "--jsonl", link).code == 0
    assert link.is_symlink() and jsonl_images(elsewhere / "real.jsonl") == [str(CAT)]

    again = run_cli(capfd, "classify", *FAST, CAT, "--jsonl", link)
    assert again.code == EXIT_OUTPUT and "out.jsonl already exists: pass --force" in again.err
    (elsewhere / "real.jsonl").write_text("mine\n")
    assert run_cli(capfd, "classify", *FAST, CAT, "--jsonl", link, "--force").code == 0
    assert link.is_symlink() and jsonl_images(elsewhere / "real.jsonl") == [str(CAT)]
    assert part_files(tmp_path) == []


# --- 2. No-clobber holds at the end of the run ---------------------------------------------------

def test_publishing_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out.jsonl"
    results = AtomicFile(target)
    results.handle.write("new\n")
    target.write_text("mine\n")
    (tmp_path / "out.1.jsonl").write_text("also mine\n")
    with pytest.raises(OutputConflict) as conflict:
        results.publish()
    assert conflict.value.kept == tmp_path / "out.2.jsonl"
    assert target.read_text() == "mine\n" and (tmp_path / "out.1.jsonl").read_text() == "also mine\n"
    assert (tmp_path / "out.2.jsonl").read_text() == "new\n"
    assert part_files(tmp_path) == []


def test_a_file_created_during_the_run_is_kept_and_the_results_too(tmp_path):
    images = image_folder(tmp_path / "photos", CAT, 20)
    target = tmp_path / "out.jsonl"
    process = start("classify", *FAST, tmp_path / "photos", "--jsonl", target)
    wait_until(records_in_part(tmp_path, 1), process)
    with paused(process):
        target.write_text("mine\n")
    outcome = finish(process)
    assert outcome.code == EXIT_OUTPUT
    assert f"{target} was created by someone else during the run and was left as it is; the " \
           f"results were kept in {tmp_path / 'out.1.jsonl'}" in outcome.err
    assert target.read_text() == "mine\n"
    assert jsonl_images(tmp_path / "out.1.jsonl") == [str(p) for p in images]
    assert part_files(tmp_path) == []


def test_a_picture_created_during_the_run_is_kept_and_the_others_written(tmp_path):
    image_folder(tmp_path / "photos", IMAGES / "grace_hopper.bmp", 8)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    process = start("detect", "-b", "cpu", "-t", "1", "-m", SSD, tmp_path / "photos", "-o", pictures)
    wait_until(lambda: (pictures / "000.detect.png").exists(), process)
    with paused(process):
        (pictures / "007.detect.png").write_text("mine")
    outcome = finish(process)
    assert outcome.code == EXIT_OUTPUT, outcome.err
    assert "007.detect.png was created by someone else during the run" in outcome.err
    assert (pictures / "007.detect.png").read_text() == "mine"
    assert (pictures / "007.detect.1.png").read_bytes().startswith(b"\x89PNG")
    assert len(list(pictures.glob("00[0-6].detect.png"))) == 7 and part_files(pictures) == []


def test_picture_folder_conflicts_are_found_before_any_work(capfd, tmp_path):
    image_folder(tmp_path / "photos", IMAGES / "grace_hopper.bmp", 6)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "004.detect.png").write_text("mine")
    outcome = run_cli(capfd, "detect", "-b", "cpu", "-m", SSD, tmp_path / "photos", "-o", pictures)
    assert outcome.code == EXIT_OUTPUT
    assert "004.detect.png already exists: pass --force to overwrite, --resume to skip" in outcome.err
    assert sorted(p.name for p in pictures.iterdir()) == ["004.detect.png"]

    resumed = run_cli(capfd, "detect", "-b", "cpu", "-m", SSD, tmp_path / "photos", "-o", pictures,
                      "--resume")
    assert resumed.code == 0, resumed.err
    assert "5 of 5 images processed" in resumed.err and "1 done before were skipped" in resumed.err
    assert len(list(pictures.iterdir())) == 6 and (pictures / "004.detect.png").read_text() == "mine"


# --- 3. Stop signals keep the finished results; --resume completes the run ----------------------

@pytest.mark.parametrize("signum, flag", [(signal.SIGINT, "--jsonl"), (signal.SIGTERM, "--csv"),
                                          (signal.SIGHUP, "--jsonl")])
def test_a_stopped_run_keeps_its_results_and_resume_completes_it(tmp_path, signum, flag):
    images = [str(p) for p in image_folder(tmp_path / "photos", CAT, 16)]
    target = tmp_path / ("out.csv" if flag == "--csv" else "out.jsonl")
    process = start("classify", *FAST, tmp_path / "photos", flag, target)
    wait_until(records_in_part(tmp_path, 4), process)
    os.kill(process.pid, signum)
    stopped = finish(process)
    assert stopped.code == 128 + signum
    assert f"stopped by {signal.Signals(signum).name} after" in stopped.err
    assert f"their results are kept in {target}: run the same command with --resume" in stopped.err
    assert part_files(tmp_path) == []
    first = target.read_bytes()
    done = _images(target, flag)
    assert 3 <= len(done) < len(images) and done == images[:len(done)]

    resumed = run("classify", *FAST, tmp_path / "photos", flag, target, "--resume")
    assert resumed.code == 0, resumed.err
    assert f"{len(done)} done before were skipped" in resumed.err
    assert target.read_bytes().startswith(first)
    assert _images(target, flag) == images  # every input exactly once, in order
    assert part_files(tmp_path) == []


@pytest.mark.parametrize("flag", ["--jsonl", "--csv"])
def test_resume_takes_in_the_records_of_a_killed_run(tmp_path, flag):
    """SIGKILL (or a power cut) gives no chance to publish: the records are in the hidden .part
    file. A plain run points at it; --resume takes its whole records in and removes it."""
    images = [str(p) for p in image_folder(tmp_path / "photos", CAT, 16)]
    target = tmp_path / ("out.csv" if flag == "--csv" else "out.jsonl")
    process = start("classify", *FAST, tmp_path / "photos", flag, target)
    wait_until(records_in_part(tmp_path, 5), process)
    os.kill(process.pid, signal.SIGKILL)
    assert finish(process).code == -signal.SIGKILL
    [part] = part_files(tmp_path)
    assert not target.exists() and part.name.startswith(f".{target.name}.")
    left = part.read_bytes()
    whole = left[:left.rfind(b"\n") + 1].decode().splitlines(keepends=True)
    # CSV: the header, and the last image's rows may be cut short, so it is done again
    kept = whole if flag == "--jsonl" else whole[:-1]

    plain = run("classify", *FAST, CAT, flag, tmp_path / ("other" + target.suffix))
    assert plain.code == 0 and f"warning: {part} holds results of a run that was killed" not in plain.err
    forced = run("classify", *FAST, CAT, flag, target, "--force")
    assert f"warning: {part} holds results of a run that was killed before it finished; run with " \
           "--resume to take them in." in forced.err
    target.unlink()

    resumed = run("classify", *FAST, tmp_path / "photos", flag, target, "--resume")
    assert resumed.code == 0, resumed.err
    skipped = len(kept) - (flag == "--csv")
    assert skipped >= 3 and f"{skipped} done before were skipped" in resumed.err
    assert target.read_bytes().startswith("".join(kept).encode())
    assert _images(target, flag) == images  # every input exactly once, in order
    assert part_files(tmp_path) == []


def test_resume_removes_the_half_pictures_and_empty_files_of_killed_runs(capfd, tmp_path):
    pictures, target = tmp_path / "pictures", tmp_path / "out.jsonl"
    pictures.mkdir()
    half = pictures / ".cat.classify.png.k1ll3d00.part"
    half.write_bytes(b"\x89PNG half")
    empty = tmp_path / ".out.jsonl.k1ll3d00.part"  # killed before its first record
    empty.touch()
    done = run_cli(capfd, "classify", *FAST, CAT, "-o", pictures, "--jsonl", target, "--resume")
    assert done.code == 0, done.err
    assert not half.exists() and not empty.exists()
    assert sorted(p.name for p in pictures.iterdir()) == ["cat.classify.png"]
    assert jsonl_images(target) == [str(CAT)]


def test_a_results_file_being_written_is_not_a_leftover(tmp_path):
    """The writer's lock tells a live run's .part file from a dead one's."""
    from bredos_npu.outputs import results_leftovers

    target = tmp_path / "out.jsonl"
    writing = AtomicFile(target)
    writing.handle.write("{}\n")
    writing.checkpoint()
    assert results_leftovers(target) == []
    os.close(writing._reader)  # what the kernel does to a killed writer's descriptors
    writing.handle.close()
    assert results_leftovers(target) == [writing.temporary]


@pytest.mark.parametrize("flag", ["--jsonl", "--csv"])
def test_an_empty_part_of_a_killed_run_is_removed_without_a_word(capfd, tmp_path, flag):
    """A run killed before its first record (or, in earlier versions, between creating its .part
    file and locking it) leaves an empty unlocked .part: it holds no results to report or take in."""
    target = tmp_path / f"out.{flag[2:]}"
    empty = tmp_path / f".{target.name}.k1ll3d00.part"
    empty.touch()
    done = run_cli(capfd, "classify", *FAST, CAT, flag, target)
    [line] = done.err.splitlines()  # the summary, no warning
    assert done.code == 0 and line.startswith("bredos-npu: 1 of 1 images classified in ")
    assert not empty.exists()
    assert part_files(tmp_path) == []
    empty.touch()  # and --resume takes nothing in from it, and goes on
    resumed = run_cli(capfd, "classify", *FAST, CAT, IMAGES / "sunflower.bmp", flag, target, "--resume")
    assert resumed.code == 0 and "warning" not in resumed.err, resumed.err
    assert "1 done before were skipped" in resumed.err and not empty.exists()
    assert _images(target, flag) == [str(CAT), str(IMAGES / "sunflower.bmp")]


def test_a_live_writers_empty_file_is_not_taken_for_a_dead_runs(tmp_path):
    """A scan for dead runs' files (another run starting) removes empty unlocked ones, never a
    live writer's before its first record: that has the .part name only once it is locked."""
    from bredos_npu.outputs import results_leftovers

    target = tmp_path / "out.jsonl"
    writing = AtomicFile(target)
    assert results_leftovers(target) == [] and writing.temporary.exists()
    assert writing.temporary.name.endswith(".part") and list(tmp_path.glob("*.new")) == []
    writing.handle.write("{}\n")
    assert writing.publish() == target and target.read_text() == "{}\n"


def pictures_in(folder, minimum):
    return lambda: len(list(folder.glob("*.png"))) >= minimum


@pytest.mark.parametrize("signum, also", [(signal.SIGINT, "-o"), (signal.SIGTERM, "--jsonl")])
def test_a_stopped_json_run_prints_the_finished_results(tmp_path, signum, also):
    """--json prints one document at the end: a stop signal still gets the whole document, with
    the images finished before it (the same ones as the pictures or the --jsonl file)."""
    images = [str(p) for p in image_folder(tmp_path / "photos", CAT, 16)]
    (tmp_path / "pictures").mkdir()
    target = tmp_path / ("pictures" if also == "-o" else "out.jsonl")
    process = start("classify", *FAST, tmp_path / "photos", "--json", also, target)
    wait_until(pictures_in(target, 4) if also == "-o" else records_in_part(tmp_path, 4), process)
    os.kill(process.pid, signum)
    stopped = finish(process)
    assert stopped.code == 128 + signum
    document = json.loads(stopped.out)
    assert document["interrupted"] == signal.Signals(signum).name and document["errors"] == []
    done = [r["image"] for r in document["results"]]
    assert 3 <= len(done) < len(images) and done == images[:len(done)]
    if also == "-o":
        assert sorted(p.name for p in target.iterdir()) == [f"{Path(i).stem}.classify.png" for i in done]
        assert stopped.err.strip().endswith(
            f"stopped by {signal.Signals(signum).name} after {len(done)} images; their results were "
            'printed (the JSON says "interrupted"): write them with --jsonl FILE to be able to continue '
            "a run with --resume.")
    else:
        assert jsonl_images(target) == done
        assert f"their results are kept in {target}: run the same command with --resume" in stopped.err
    assert part_files(tmp_path) == []


def _images(target, flag):
    if flag == "--jsonl":
        return jsonl_images(target)
    with target.open(newline="") as handle:
        return [row["image"] for row in csv.DictReader(handle)]


def test_resume_refuses_files_it_did_not_write(capfd, tmp_path):
    target = tmp_path / "notes.jsonl"
    target.write_text("my notes\n")
    outcome = run_cli(capfd, "classify", *FAST, CAT, "--jsonl", target, "--resume")
    assert outcome.code == EXIT_OUTPUT
    assert "Cannot continue" in outcome.err and "line 1 is not a result of this command" in outcome.err
    assert target.read_text() == "my notes\n"
    usage = run_cli(capfd, "classify", *FAST, CAT, "--resume")
    assert usage.code == EXIT_USAGE and "--resume continues a --jsonl/--csv FILE" in usage.err


def test_resume_when_everything_is_done(capfd, tmp_path):
    target = tmp_path / "out.csv"
    assert run_cli(capfd, "classify", *FAST, CAT, "--csv", target).code == 0
    before = target.read_bytes()
    again = run_cli(capfd, "classify", *FAST, CAT, "--csv", target, "--resume")
    assert again.code == 0 and "nothing left to do: all 1 inputs were done before" in again.err
    assert target.read_bytes() == before


# --- 4. models import from several processes at once ---------------------------------------------

IMPORTER = """
import sys
from bredos_npu.models import zoo
for number in range(int(sys.argv[3])):
    zoo.import_model(sys.argv[1], f"{sys.argv[2]}-{number}")
"""


def test_concurrent_imports_lose_no_entry_and_leave_no_orphan(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "BREDOS_NPU_CACHE": str(cache)}
    model = MODELS / "keras_lstm_mnist_ptq.tflite"  # small, and a classifier as import checks
    workers = [subprocess.Popen([sys.executable, "-c", IMPORTER, str(model), f"w{n}", "12"], env=env,
                                stderr=subprocess.PIPE) for n in range(4)]
    for worker in workers:
        assert worker.wait(timeout=90) == 0, worker.stderr.read().decode()
        worker.stderr.close()
    index = json.loads((cache / "imported.json").read_text())
    expected = {f"w{w}-{n}" for w in range(4) for n in range(12)}
    assert set(index) == expected
    assert {p.name for p in (cache / "imported").iterdir()} == {f"{name}.tflite" for name in expected}


# --- 6. Output faults are exit 9, with the results kept where possible ---------------------------

def test_a_name_too_long_is_an_output_error(capfd, tmp_path):
    outcome = run_cli(capfd, "classify", *FAST, CAT, "--csv", tmp_path / ("x" * 300 + ".csv"))
    assert outcome.code == EXIT_OUTPUT and "File name too long" in outcome.err
    for pictures in (tmp_path / ("y" * 300), tmp_path / ("z" * 300 + ".png")):
        outcome = run_cli(capfd, "detect", "-b", "cpu", "-m", SSD, CAT, CAT, "-o", pictures)
        assert outcome.code == EXIT_OUTPUT and "it is not a folder" in outcome.err
        outcome = run_cli(capfd, "detect", "-b", "cpu", "-m", SSD, CAT, "-o", pictures)
        assert outcome.code == EXIT_OUTPUT and "File name too long" in outcome.err


def test_permission_denied_is_an_output_error(tmp_path):
    (tmp_path / "read-only").mkdir(mode=0o555)
    (tmp_path / "closed").mkdir(mode=0o000)
    prefix = without_file_permission_override()
    for target, words in ((tmp_path / "read-only" / "out.csv", "permission denied in"),
                          (tmp_path / "closed" / "out.csv", "Permission denied")):
        outcome = run("classify", *FAST, CAT, "--csv", target, prefix=prefix)
        assert outcome.code == EXIT_OUTPUT, outcome.err
        assert f"Cannot write {target}" in outcome.err and words in outcome.err
    (tmp_path / "closed").chmod(0o755)


def test_output_folder_removed_during_the_run(tmp_path):
    images = image_folder(tmp_path / "photos", CAT, 12)
    folder, here = tmp_path / "results", tmp_path / "here"
    folder.mkdir()
    here.mkdir()
    process = start("classify", *FAST, tmp_path / "photos", "--jsonl", folder / "out.jsonl", cwd=here)
    wait_until(records_in_part(folder, 1), process)
    with paused(process):
        shutil.rmtree(folder)
    outcome = finish(process)
    assert outcome.code == EXIT_OUTPUT
    assert (f"its folder {folder} was removed during the run; the results were kept in "
            f"{here / 'out.jsonl'}") in outcome.err
    assert jsonl_images(here / "out.jsonl") == [str(p) for p in images]


def _small_file_system(folder):
    """A command prefix that gives ``folder`` a private 12 KiB tmpfs (ENOSPC), or None."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10) \
        if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        return None
    return ("unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=12k tmpfs '{folder}' && exec \"$@\"", "sh")


def _file_size_limit():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (12 * 1024, 12 * 1024))


def test_a_full_disk_keeps_the_finished_results_elsewhere(tmp_path):
    image_folder(tmp_path / "photos", CAT, 80)
    small, here = tmp_path / "small", tmp_path / "here"
    small.mkdir()
    here.mkdir()
    prefix = _small_file_system(small)  # else the same fault from a file size limit (EFBIG)
    outcome = run("classify", *FAST, tmp_path / "photos", "--jsonl", small / "out.jsonl", cwd=here,
                  prefix=prefix or (), preexec=None if prefix else _file_size_limit)
    assert outcome.code == EXIT_OUTPUT, outcome.err
    reason = "No space left on device" if prefix else "File too large"
    assert f"Cannot write {small / 'out.jsonl'}: {reason}; the " in outcome.err
    assert f"results finished before were kept in {here / 'out.jsonl'}" in outcome.err
    kept = jsonl_images(here / "out.jsonl")
    assert 10 < len(kept) < 80
    assert kept == [str(tmp_path / "photos" / f"{n:03d}.bmp") for n in range(len(kept))]
    assert not (small / "out.jsonl").exists()


def test_non_utf8_file_names_are_escaped_in_every_output(capfd, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(CAT, os.path.join(os.fsencode(photos), b"caf\xe9.bmp"))
    shutil.copy(CAT, photos / "ok.bmp")
    escaped = f"{photos}/caf\\xe9.bmp"
    text = run("classify", *FAST, photos)  # a real terminal encoding, not the test's capture
    assert text.code == 0 and escaped in text.out
    for flag, name in (("--csv", "out.csv"), ("--jsonl", "out.jsonl")):
        outcome = run_cli(capfd, "classify", *FAST, photos, flag, tmp_path / name)
        assert outcome.code == 0, outcome.err
        assert _images(tmp_path / name, flag) == [escaped, f"{photos}/ok.bmp"]
        again = run_cli(capfd, "classify", *FAST, photos, flag, tmp_path / name, "--resume")
        assert again.code == 0 and "all 2 inputs were done before" in again.err


def test_atomic_open_write_errors_leave_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OutputError), atomic_open(target) as out:
        out.write("x")
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_broken_image_still_exit_5_with_files(capfd, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    outcome = run_cli(capfd, "classify", *FAST, tmp_path / "bad.jpg", CAT, "--jsonl", tmp_path / "o.jsonl")
    assert outcome.code == EXIT_IMAGE and len(jsonl_images(tmp_path / "o.jsonl")) == 2


# --- 5. Folders that cannot be read, trees too deep or too long ----------------------------------

def test_an_unreadable_subfolder_is_reported_like_a_broken_image(tmp_path):
    photos = tmp_path / "photos"
    image_folder(photos, CAT, 1, "a{1}")
    image_folder(photos / "locked", CAT, 1, "b{1}")
    image_folder(photos / "zz", CAT, 1, "c{1}")
    (photos / "locked").chmod(0o000)
    try:
        outcome = run("classify", *FAST, "-r", photos, "--jsonl", tmp_path / "out.jsonl",
                      prefix=without_file_permission_override())
    finally:
        (photos / "locked").chmod(0o755)
    assert outcome.code == EXIT_IMAGE, outcome.err
    assert (f"bredos-npu: error: Cannot read the folder {photos / 'locked'}: permission denied; its "
            "images were skipped.") in outcome.err
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["image"] for r in records] == [str(photos / "a.bmp"), str(photos / "locked"),
                                             str(photos / "zz" / "c.bmp")]
    assert "error" in records[1] and "classes" in records[2]
    assert "2 of 3 images classified, 1 failed" in outcome.err


def _descend(root, names, image):
    """Create root/names[0]/names[1]/... through directory descriptors (the full path may be
    longer than the kernel accepts) and put ``image`` in the deepest folder as x.bmp."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=folder)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        out = os.open("x.bmp", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder)
        with os.fdopen(out, "wb") as handle:
            handle.write(image.read_bytes())
    finally:
        os.close(folder)


@pytest.fixture
def deep_tree(tmp_path):
    """deep/d/d/.../d/x.bmp, 1200 levels: deeper than Python 3.11's os.walk (and shutil.rmtree,
    which pytest uses to clean up) can recurse, so the test removes it itself, deepest first."""
    deep = tmp_path / "deep"
    deep.mkdir()
    _descend(deep, ["d"] * 1200, CAT)
    yield deep
    folders = [deep / ("d/" * level) for level in range(1200, 0, -1)]
    (folders[0] / "x.bmp").unlink()
    for folder in folders:
        folder.rmdir()


def test_very_deep_and_too_long_trees_are_walked_or_reported(capfd, tmp_path, deep_tree):
    deep, long = deep_tree, tmp_path / "long"
    long.mkdir()
    outcome = run_cli(capfd, "classify", *FAST, "-r", deep, "--jsonl", tmp_path / "deep.jsonl")
    assert outcome.code == 0, outcome.err
    assert jsonl_images(tmp_path / "deep.jsonl") == [str(deep / ("d/" * 1200) / "x.bmp")]

    _descend(long, ["n" * 250] * 20, CAT)  # 5000+ characters: more than PATH_MAX
    image_folder(long, CAT, 1, "top{1}")
    outcome = run_cli(capfd, "classify", *FAST, "-r", long, "--jsonl", tmp_path / "long.jsonl")
    assert outcome.code == EXIT_IMAGE
    errors = [line for line in outcome.err.splitlines() if line.startswith("bredos-npu: error:")]
    assert len(errors) == 1 and "file name too long; its images were skipped" in errors[0]
    assert len(errors[0]) < 400  # the path is shortened in the message
    records = [json.loads(line) for line in (tmp_path / "long.jsonl").read_text().splitlines()]
    assert records[0]["image"] == str(long / "top.bmp") and "classes" in records[0]
    assert len(records) == 2 and "error" in records[1]


@pytest.mark.parametrize("command", [
    ("classify", *FAST, CAT, "--jsonl"),
    ("bench", "-b", "cpu", "--runs", "1", "--warmup", "0", "--csv"),
    ("inspect", MODELS / "split_concat.tflite", "--plot"),
    ("report", "-m", MODELS / "split_concat.tflite", "--quick", "--root", "{root}", "-o"),
], ids=lambda command: command[0])
def test_force_replaces_the_file_and_only_then(capfd, tmp_path, command):
    """Every command's output honours --force: kept without it, replaced with it."""
    root = tmp_path / "root"
    root.mkdir()
    command = tuple(str(root) if part == "{root}" else part for part in command)
    target = tmp_path / ("out.png" if command[0] == "inspect" else "out.csv")
    target.write_text("mine")
    kept = run_cli(capfd, *command, target)
    assert kept.code == EXIT_OUTPUT and target.read_text() == "mine"
    replaced = run_cli(capfd, *command, target, "--force")
    assert replaced.code == 0, replaced.err
    assert target.read_bytes() != b"mine" and list(tmp_path.glob("out.1.*")) == []
