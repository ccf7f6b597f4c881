"""The bridge's HTTP edge: error rendering, credentials, JSON bodies."""
