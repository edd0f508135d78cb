"""sourceip.lab."""
