"""sourceip.net."""
