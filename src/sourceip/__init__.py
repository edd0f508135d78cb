"""sourceip: which source IP does my Kubernetes pod see, why, and how to get the real client IP."""

__version__ = "0.1.0"
