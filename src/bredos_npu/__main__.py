from bredos_npu.cli import main

main()
