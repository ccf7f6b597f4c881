"""What the bridge and the relay share: typed API errors, their JSON answers, the error
middleware. Nothing here knows a platform, a POS or the tunnel."""
