"""The tunnel between a venue's bridge and the cloud relay, sans-I/O.

One protocol serves both ends (``Side.CLIENT`` at the venue, ``Side.RELAY`` in the cloud), as
websockets' ``Protocol`` serves client and server:

- ``messages``: what each frame says (frozen dataclasses that check their fields);
- ``frames``: the binary codec, frames to bytes and bytes, split anywhere, back to frames;
- ``fields``: the fields inside a payload (integers, u16-counted strings and header lists),
  packed, and read back with every short or bad field a typed error;
- ``streams``: the stream table: which streams exist, the flow-control rules and windows;
- ``stream_state``: one stream's record (flags, windows, queued bytes) and its state;
- ``handshake``: HELLO, WELCOME and the version both ends speak;
- ``protocol``: :class:`~tunnel.protocol.TunnelProtocol`, the connection state machine
  the I/O layers drive (``receive_data`` → ``events_received``, ``send_*`` → ``data_to_send``);
- ``errors``: the typed error tree and the CLOSE code each error sends.

Nothing here does I/O or reads a clock (``tests/core/test_purity.py``); the websocket loops
live elsewhere. The wire format is ``docs/tunnel-protocol.md``.
"""
