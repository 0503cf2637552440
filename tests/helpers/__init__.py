"""Shared test helpers: plain functions and data builders, imported by the test modules (never by each other)."""
