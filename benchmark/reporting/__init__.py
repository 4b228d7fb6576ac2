"""Reporting: tables, statistics, plots."""
