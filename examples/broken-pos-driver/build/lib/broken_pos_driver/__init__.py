"""A driver plugin whose import fails, as after a bad upgrade or a missing library."""

raise ImportError("broken_pos_driver needs libacme.so, which is not installed")
