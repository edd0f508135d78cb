"""sourceip.echo."""
