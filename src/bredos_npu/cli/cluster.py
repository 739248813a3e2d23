"""``bredos-npu cluster``: put a board into a Ray cluster with the NPU cores it really has."""

from __future__ import annotations

import click


@click.group()
def cluster() -> None:
    """Run bulk jobs across many RK3588 boards with Ray (see --cluster on classify/detect/...)."""


@cluster.command()
@click.option("--head", is_flag=True, help="Start the cluster's head node on this board.")
@click.option("--address", metavar="HOST:PORT", help="Join the cluster whose head is at HOST:PORT.")
@click.option("--port", type=click.IntRange(1, 65535), default=6379, show_default=True,
              help="The head's port (with --head).")
@click.option("--node-ip-address", "node_ip", metavar="IP",
              help="This board's address as the others reach it.")
@click.option("--block", is_flag=True, help="Stay in the foreground until stopped (for a systemd service).")
@click.option("--root", metavar="DIR", help="Read the system below DIR (default: $BREDOS_NPU_ROOT or /).")
def start(head: bool, address: str | None, port: int, node_ip: str | None, block: bool,
          root: str | None) -> None:
    """Start Ray on this board, offering 3 `rk3588_npu` cores when the doctor says the NPU is ready."""
    from bredos_npu.cluster.nodes import offer, start_command, start_node

    if head == bool(address):
        raise click.UsageError("give either --head or --address HOST:PORT")
    offered = offer(root)
    command = start_command(offered.npu_cores, head, address, port, node_ip, block)
    click.echo(f"bredos-npu: this board offers {offered.npu_cores} NPU cores ({offered.verdict})", err=True)
    click.echo(f"bredos-npu: {' '.join(command[1:])}", err=True)
    start_node(command, block)
    if not block:
        joined = f"127.0.0.1:{port}" if head else address
        click.echo(f"bredos-npu: started; run jobs with --cluster {joined if not head else 'auto'} "
                   f"(from other machines: --cluster <this board's address>:{port}); "
                   "stop with `ray stop`.", err=True)


@cluster.command()
@click.option("--address", default="auto", show_default=True, metavar="HOST:PORT",
              help="The cluster (auto: the one this machine is part of).")
def status(address: str) -> None:
    """List the cluster's nodes with the NPU cores, CPUs, backend and doctor's verdict of each."""
    from bredos_npu.cluster.nodes import cluster_status

    nodes = cluster_status(address)
    width = max(len(n.name) for n in nodes)
    click.echo(f"{'node':<{width}}  state  npu cores  cpus  backend  doctor")
    for node in nodes:
        click.echo(f"{node.name:<{width}}  {'alive' if node.alive else 'dead ':<5}  {node.npu_cores:>9}  "
                   f"{node.cpus:>4}  {node.backend:<7}  {node.verdict}")
    total = sum(n.npu_cores for n in nodes if n.alive)
    click.echo(f"{sum(n.alive for n in nodes)} node(s) alive, {total} NPU cores in all.")
