"""Interpreter and delegate loading; the npu, cpu and auto backends."""
