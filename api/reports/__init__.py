"""Printable reports for elected councils (French), rendered from savings results."""
