"""ISPS: the Integrated Social Protection System.

The package is a map of the domain: ``registry`` (households, individuals,
geography, provenance) at the bottom; ``targeting`` and ``linkage`` above it;
``programs`` above those; ``payments`` on top. ``api``, ``web`` and ``cli`` are
thin adapters over the domain modules.
"""

__version__ = "0.1.0"
