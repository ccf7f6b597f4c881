"""The bridge's end of the tunnel: an outbound websocket to the relay (``client``) and the
hand-off of each forwarded request to the bridge's own HTTP listener (``dispatch``)."""
