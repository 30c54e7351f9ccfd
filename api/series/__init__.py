"""Time-series queries shared by the routers (SQL on the relations ingest writes)."""
