"""`bredos-npu doctor` on fake system trees: one per situation users meet."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bredos_npu.cli import cli
from bredos_npu.doctor import diagnose
from bredos_npu.errors import EXIT_NPU_NOT_READY


def run_doctor(root, *args: str):
    result = CliRunner().invoke(cli, ["doctor", "--root", str(root.base), *args])
    return result


def check(report, name: str):
    return next(c for c in report.checks if c.name == name)


def test_ready_rk3588_is_npu_ready(ready_board):
    result = run_doctor(ready_board)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "NPU ready"
    assert "Rockchip RK3588 (Radxa ROCK 5B)" in result.output
    assert "CONFIG_DRM_ACCEL_ROCKET=m (/proc/config.gz)" in result.output
    assert "crw-rw---- root render" in result.output
    assert "(delegate created, ran a test model)" in result.output


def test_json_has_every_check(ready_board):
    result = run_doctor(ready_board, "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["npu_ready"] is True and data["verdict"] == "NPU ready"
    names = [c["name"] for c in data["checks"]]
    assert names == ["SoC", "Kernel", "Kernel config", "Driver", "Device", "Teflon", "Python",
                     "TFLite runtime", "numpy", "Pillow"]
    assert all(set(c) >= {"name", "status", "found", "fix"} for c in data["checks"])


def test_rk3588s_is_accepted(ready_board):
    ready_board.soc("xunlong,orangepi-5", "rockchip,rk3588s", model="Orange Pi 5")
    assert check(diagnose(str(ready_board.base)), "SoC").found == "Rockchip RK3588S (Orange Pi 5)"


def test_old_kernel(ready_board):
    ready_board.kernel("6.6.89-rockchip", rocket=None)
    report = diagnose(str(ready_board.base))
    assert check(report, "Kernel").status == "fail"
    assert report.verdict == "CPU only: Linux 6.6.89-rockchip is older than 6.18 (no rocket driver)"
    result = run_doctor(ready_board)
    assert result.exit_code == EXIT_NPU_NOT_READY


def test_option_missing(ready_board):
    ready_board.kernel("6.18.2-1-ARCH", rocket=None)
    found = check(diagnose(str(ready_board.base)), "Kernel config")
    assert found.status == "fail"
    assert found.found == "CONFIG_DRM_ACCEL_ROCKET is not set in /proc/config.gz"
    assert "CONFIG_DRM_ACCEL_ROCKET=m" in found.fix


def test_config_from_boot_when_proc_config_absent(ready_board):
    ready_board.remove("/proc/config.gz")
    ready_board.write("/boot/config-6.18.2-1-ARCH", "CONFIG_DRM_ACCEL_ROCKET=y\n")
    found = check(diagnose(str(ready_board.base)), "Kernel config")
    assert (found.status, found.found) == ("ok", "CONFIG_DRM_ACCEL_ROCKET=y (/boot/config-6.18.2-1-ARCH)")


def test_no_config_anywhere_is_a_warning(ready_board):
    ready_board.remove("/proc/config.gz")
    report = diagnose(str(ready_board.base))
    assert check(report, "Kernel config").status == "warn"
    assert check(report, "Kernel config").fix == "sudo modprobe configs"
    assert report.npu_ready


def test_module_not_loaded(ready_board):
    ready_board.module(loaded=False)
    report = diagnose(str(ready_board.base))
    driver = check(report, "Driver")
    assert (driver.status, driver.fix) == ("fail", "sudo modprobe rocket")
    assert report.verdict == "CPU only: rocket module not loaded"


def test_built_in_driver_counts(ready_board):
    ready_board.module(loaded=False)
    (ready_board.base / "sys/module/rocket").mkdir(parents=True)
    assert check(diagnose(str(ready_board.base)), "Driver").found == "rocket module built-in"


def test_no_device_node(ready_board):
    ready_board.remove("/dev/accel/accel0")
    report = diagnose(str(ready_board.base))
    device = check(report, "Device")
    assert (device.status, device.fix) == ("fail", "sudo modprobe rocket")
    assert report.verdict == "CPU only: /dev/accel/accel0 does not exist"


def test_device_not_readable_suggests_joining_its_group(ready_board):
    ready_board.identity(uid=1000, gid=1000, groups=(998,))
    result = run_doctor(ready_board)
    assert result.exit_code == EXIT_NPU_NOT_READY
    device = check(diagnose(str(ready_board.base)), "Device")
    assert device.status == "fail"
    assert "not readable and writable by this user (crw-rw---- root render)" in device.found
    assert device.fix == "sudo usermod -aG render $USER (then log in again)"


def test_root_owned_node_suggests_udev_rule(ready_board):
    ready_board.remove("/dev/accel/accel0")
    ready_board.device(mode=0o600, gid=0)
    device = check(diagnose(str(ready_board.base)), "Device")
    assert device.status == "fail"
    assert 'GROUP="render", MODE="0660"' in device.fix


def test_regular_file_is_not_a_device(ready_board):
    ready_board.remove("/dev/accel/accel0")
    ready_board.write("/dev/accel/accel0", "")
    assert "is not a character device" in check(diagnose(str(ready_board.base)), "Device").found


def test_a_real_character_device_is_read_through_the_same_seam(ready_board):
    """/dev/null is a character device on every machine: the real stat path, no fake answer."""
    ready_board.remove("/dev/accel/accel0")
    (ready_board.base / "dev/accel/accel0").symlink_to("/dev/null")
    device = check(diagnose(str(ready_board.base)), "Device")
    assert (device.status, device.found) == ("ok", "/dev/accel/accel0 (crw-rw-rw- root root)")


def test_library_missing(ready_board):
    ready_board.remove("/usr/lib/libteflon.so")
    report = diagnose(str(ready_board.base))
    teflon = check(report, "Teflon")
    assert (teflon.status, teflon.fix) == ("fail", "sudo pacman -Syu mesa")
    assert report.verdict.startswith("CPU only: libteflon.so not found (/usr/lib/libteflon.so, ")


def test_library_found_in_debian_location(ready_board, delegates):
    ready_board.remove("/usr/lib/libteflon.so")
    path = ready_board.library(delegates["passthrough"], "/usr/lib/teflon/libteflon.so")
    teflon = check(diagnose(str(ready_board.base)), "Teflon")
    assert (teflon.status, teflon.found) == ("ok", f"{path} (delegate created, ran a test model)")


def test_library_without_entry_points(ready_board, delegates):
    ready_board.library(delegates["not_a_delegate"])
    teflon = check(diagnose(str(ready_board.base)), "Teflon")
    assert teflon.status == "fail"
    assert "missing symbol tflite_plugin_create_delegate" in teflon.found


def test_library_that_does_not_load(ready_board):
    ready_board.write("/usr/lib/libteflon.so", "not an ELF file")
    teflon = check(diagnose(str(ready_board.base)), "Teflon")
    assert teflon.status == "fail" and "cannot be loaded" in teflon.found


@pytest.mark.parametrize("compatible", [("pine64,quartz64-a", "rockchip,rk3566"),
                                        ("raspberrypi,5-model-b", "brcm,bcm2712")])
def test_non_rk3588_board(ready_board, compatible):
    ready_board.soc(*compatible, model="Other")
    report = diagnose(str(ready_board.base))
    assert report.verdict == f"CPU only: not an RK3588 board ({compatible[-1]})"
    # rocket checks would give misleading fixes on other SoCs
    assert {check(report, n).status for n in ("Kernel config", "Driver", "Device")} == {"skip"}


def test_machine_without_device_tree(fake_system):
    fake_system.kernel("6.12.0")
    report = diagnose(str(fake_system.base))
    assert report.verdict.startswith("CPU only: not an RK3588 board (no device tree")
    result = run_doctor(fake_system)
    assert result.exit_code == EXIT_NPU_NOT_READY
    assert "[skip] Driver" in result.output


def test_root_from_environment(ready_board, monkeypatch):
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(ready_board.base))
    assert diagnose().npu_ready


def test_missing_root_is_an_error(capfd, tmp_path):
    from cli_runner import run_cli

    outcome = run_cli(capfd, "doctor", "--root", tmp_path / "nowhere")
    assert outcome.code == 2
    assert f"The system root {tmp_path / 'nowhere'} does not exist" in outcome.err


def test_old_kernel_does_not_suggest_modprobe(ready_board):
    ready_board.kernel("6.1.75-vendor", rocket=None)
    ready_board.module(loaded=False)
    ready_board.remove("/dev/accel/accel0")
    report = diagnose(str(ready_board.base))
    assert {check(report, n).status for n in ("Driver", "Device")} == {"skip"}
    assert all(c.fix != "sudo modprobe rocket" for c in report.checks)


def test_library_that_returns_no_delegate(ready_board, delegates):
    ready_board.library(delegates["null"])
    report = diagnose(str(ready_board.base))
    teflon = check(report, "Teflon")
    assert teflon.status == "fail"
    assert teflon.found.endswith("loads but returns no delegate (Couldn't open kernel device)")
    assert not report.npu_ready


def test_root_that_is_a_file_or_empty(capfd, tmp_path):
    from cli_runner import run_cli

    afile = tmp_path / "passwd"
    afile.write_text("x")
    assert "is not a folder" in run_cli(capfd, "doctor", "--root", afile).err
    outcome = run_cli(capfd, "doctor", "--root", "")
    assert outcome.code == 2 and "--root needs a folder" in outcome.err
