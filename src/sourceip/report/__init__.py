"""sourceip.report."""
