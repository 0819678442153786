"""Citizen-facing services: the household file an officer opens, One Window, grievances."""
