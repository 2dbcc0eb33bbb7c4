"""Credential providers, one module each, on the shared base in base.py."""
