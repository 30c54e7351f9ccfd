"""territoire firmware_profiles package."""
