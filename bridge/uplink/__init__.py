"""The bridge's end of the tunnel: an outbound websocket to each relay (``client``), and each
forwarded request served in process by the bridge's own aiohttp server (``dispatch``, with
the HTTP/1.1 bytes in ``http1``)."""
