"""Who may see what: users, roles, district scope, and the audit log of every read."""
