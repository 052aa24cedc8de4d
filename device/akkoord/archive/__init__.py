"""The organisation's archive: recordings collected from devices, kept by content hash,
indexed in SQLite (default) or PostgreSQL, with the organisation's own signed log.

This package runs on the organisation's computer. It imports the store (formats, verifier)
and never the daemon.
"""
