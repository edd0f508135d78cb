"""sourceip.netfilter."""
