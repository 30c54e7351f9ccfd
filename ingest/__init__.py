"""territoire ingest package."""
