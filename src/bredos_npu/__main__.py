from bredos_npu.cli import entry

entry()
