"""Copies for both parties: the package, its verification, the stick, the verify page."""
