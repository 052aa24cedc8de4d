"""The sealed recording store: format, writer, reader/verifier, keys, recovery, custody.

docs/FORMAT.md is the normative specification of everything written here.
"""
