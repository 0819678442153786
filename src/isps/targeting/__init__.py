"""Targeting: PMT models and scoring (and, later, eligibility rules and vulnerability)."""
