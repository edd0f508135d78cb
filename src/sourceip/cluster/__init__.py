"""sourceip.cluster."""
