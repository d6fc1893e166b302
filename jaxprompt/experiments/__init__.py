"""Whole runs built from the library: one tune-and-test run (`tune`) and the quickstart."""
