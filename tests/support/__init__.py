"""Helpers shared by the tests (conftest files hold fixtures only)."""
