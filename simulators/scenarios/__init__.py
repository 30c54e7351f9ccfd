"""Deterministic, fast-forward scenario simulators reproducing the territory's published results.

Each scenario builds an inventory (tenants, sites, gateways, devices) and a
time-ordered stream of kernel readings and events, which transports publish
into the real paths: kernel batches on territoire/v1/{tenant}/{gateway}/up,
or ChirpStack v4 uplink events with the devices' real payload bytes.
"""
