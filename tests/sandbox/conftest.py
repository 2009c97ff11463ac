"""The sandbox tests share the session keys of tests/conftest.py."""
