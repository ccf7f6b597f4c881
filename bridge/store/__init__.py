"""SQLite persistence. All SQL of the bridge lives in this package."""
