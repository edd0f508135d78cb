"""sourceip.sources."""
