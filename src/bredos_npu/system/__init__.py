"""Reading the board: SoC, kernel, driver, device node, Teflon library, CPU clusters.

Every reader takes a :class:`~bredos_npu.system.root.SystemRoot`, so tests point the whole
package at a fake system tree instead of ``/``.
"""
