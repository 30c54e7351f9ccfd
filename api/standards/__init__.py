"""Open-standard views of the data: OGC SensorThings and FIWARE NGSI-LD (docs/standards.md)."""
