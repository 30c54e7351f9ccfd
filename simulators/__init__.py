"""territoire simulators package."""
