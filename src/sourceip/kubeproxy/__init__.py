"""sourceip.kubeproxy."""
