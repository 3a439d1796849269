"""Measuring: training steps against the CPU's floor, translation speed, memory and wall time."""
