"""Inventory of a tenant: sites, gateways, devices, and the metric catalogue."""
