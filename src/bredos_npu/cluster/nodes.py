"""Starting a board's Ray node with the resources its doctor's verdict allows, and listing nodes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from bredos_npu.cluster import NPU_CORES, NPU_RESOURCE, import_ray
from bredos_npu.cluster.connect import DEFAULT_PORT, connect
from bredos_npu.errors import BackendError, Reason, RuntimeMissingError

START_SECONDS = 120.0
STATUS_SECONDS = 30.0
# Ray must not report usage to its makers from a user's boards.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


class NodeOffer(NamedTuple):
    """What one board offers a cluster: NPU cores (0 when its NPU is not ready) and why."""

    npu_cores: int
    verdict: str


def offer(root: str | None = None, delegate: str | None = None) -> NodeOffer:
    """3 NPU cores on a board whose doctor says "NPU ready", else 0, with the doctor's verdict."""
    from bredos_npu.doctor import diagnose

    report = diagnose(root, delegate)
    return NodeOffer(NPU_CORES if report.npu_ready else 0, report.verdict)


def ray_executable() -> str:
    """The ``ray`` command of this Python environment (or on PATH)."""
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        import_ray()  # says which extra to install when Ray itself is missing
        raise RuntimeMissingError("Ray's `ray` command is not installed beside this Python",
                                  reason=Reason.MISSING_PACKAGE, package="ray", extra="cluster")
    return found


def start_command(npu_cores: int, head: bool, address: str | None, port: int = DEFAULT_PORT,
                  node_ip: str | None = None, block: bool = False) -> list[str]:
    """The ``ray start`` command line for this board (no dashboard: it costs memory on 4 GB boards)."""
    command = [ray_executable(), "start", "--resources", json.dumps({NPU_RESOURCE: npu_cores}),
               "--disable-usage-stats"]
    if head:
        command += ["--head", "--port", str(port), "--include-dashboard=false"]
    else:
        command += ["--address", str(address)]
    if node_ip:
        command += ["--node-ip-address", node_ip]
    if block:
        command.append("--block")
    return command


def start_node(command: list[str], block: bool = False) -> int:
    """Run ``ray start``; with ``block`` it runs until stopped (for systemd), else within a deadline."""
    env = {**os.environ, **QUIET_ENV}
    if block:  # become `ray start --block`, so that systemd's (or anyone's) SIGTERM reaches Ray
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, env)
    try:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_SECONDS)
    except subprocess.TimeoutExpired:
        raise BackendError(f"`ray start` did not finish within {START_SECONDS:.0f} s",
                           reason=Reason.CLUSTER_UNREACHABLE) from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if "rror" in line), lines[-1] if lines else "")
        raise BackendError(f"`ray start` failed ({said[:300]})", reason=Reason.CLUSTER_UNREACHABLE)
    return 0


class NodeStatus(NamedTuple):
    """One node of a cluster: its name, NPU cores and CPUs it offers, and its doctor's verdict."""

    name: str
    alive: bool
    npu_cores: int
    cpus: int
    verdict: str

    @property
    def backend(self) -> str:
        return "npu" if self.npu_cores else "cpu"


def cluster_status(address: str) -> list[NodeStatus]:
    """Every node of the cluster at ``address``; each alive one runs the doctor on itself."""
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def verdict() -> str:
        return offer().verdict

    nodes = ray.nodes()
    asked = {node["NodeID"]: verdict.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote() for node in nodes if node["Alive"]}
    found = []
    for node in nodes:
        resources: dict[str, Any] = node.get("Resources", {})
        said = "node is dead"
        if node["Alive"]:
            try:
                said = ray.get(asked[node["NodeID"]], timeout=STATUS_SECONDS)
            except Exception as why:  # a node that cannot run the check still gets listed
                said = f"doctor did not answer ({type(why).__name__})"
        found.append(NodeStatus(f"{node['NodeManagerAddress']}:{node['NodeID'][:8]}", node["Alive"],
                                int(resources.get(NPU_RESOURCE, 0)), int(resources.get("CPU", 0)), said))
    return found
