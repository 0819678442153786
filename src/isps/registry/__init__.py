"""The dynamic social registry: households, individuals, geography, and the history and
provenance of every value. The bottom of the module stack: it imports no other domain module."""
