"""The bridge's own HTTP edge beside the platforms' URLs: the technician's API (its bodies,
its views, its part of the OpenAPI document) and the credential checks every route uses. It
imports no platform (``tests/core/test_layers.py``)."""
