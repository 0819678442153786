"""Eligibility rules: programs declare their criteria as data, in a safe expression language,
evaluated set-based over the registry and explained to citizens in plain words."""
