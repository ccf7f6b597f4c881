"""The bridge's end of the tunnel, platform-neutral transport: an outbound websocket to each
relay (``client``), and each tunnelled request forwarded to the bridge's own HTTP listener
with a pooled keep-alive client (``forward``)."""
