"""sourceip.dataplane."""
