"""Firmware profiles: device payload codecs and Modbus register maps, described as data.

`load_catalog()` reads the YAML profiles shipped in firmware_profiles/profiles/
(plus any user directories); see docs/firmware_profiles.md.
"""

from .catalog import Catalog, Decoded, MetricInfo, Profile, load_catalog, load_metrics
from .registers import ReadBlock, RegisterMap, WriteOp

__all__ = [
    "Catalog",
    "Decoded",
    "MetricInfo",
    "Profile",
    "ReadBlock",
    "RegisterMap",
    "WriteOp",
    "load_catalog",
    "load_metrics",
]
