"""The French dashboard served by the API under /tableau/ (docs/dashboard.md)."""
