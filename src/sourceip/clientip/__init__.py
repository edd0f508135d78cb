"""sourceip.clientip."""
