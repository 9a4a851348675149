"""Checks of users' implementations: exact (check), numeric against mpmath (crosscheck)."""
