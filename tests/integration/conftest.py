"""Fixtures shared by the integration tests of more than one module."""

# The deployed signature authorizer with clocks the test moves; defined beside its own tests.
from tests.integration.test_signature_authorizer import gate

__all__ = ["gate"]
