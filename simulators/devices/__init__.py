"""Simulated field devices: Modbus meters and relays, LNS uplink events, a serial LoRa module.

They speak the real wire formats, so the agent's sources, scenarios and
benchmarks exercise the same code paths as in the field.
"""
