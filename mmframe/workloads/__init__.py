"""Scenario programs shipped with the core."""
