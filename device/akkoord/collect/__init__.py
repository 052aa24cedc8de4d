"""Device side of collection: a signed token on a stick, a collection package, receipts."""
