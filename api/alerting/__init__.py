"""Alert engine: rules, evaluation, notification delivery (docs/alerts.md)."""
