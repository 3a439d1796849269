"""Reporting: tables, readings and figures from report folders alone (JSON and text, no models)."""
