"""sourceip.explain."""
