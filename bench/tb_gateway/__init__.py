"""Helpers of bench/compare_tb_gateway.py: measuring a gateway process from outside, and the two contenders."""
