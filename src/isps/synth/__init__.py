"""Synthetic Punjab: reproducible households, members, names and CNICs."""
