"""The bridge's own HTTP edge beside the platforms' URLs: the technician's API and the
credential checks every route uses."""
