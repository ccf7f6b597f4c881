"""``pos-bridge``: the command (``main``), the demo, and running the bridge until stopped."""
