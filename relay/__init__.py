"""The cloud relay: platforms call ``/v/{venue}/…``; each request goes down that venue's tunnel.

- ``config``: the relay's TOML file (``relay.example.toml``);
- ``venues``: venue tunnel tokens, stored hashed, and ``add-venue``;
- ``registry``: which tunnel serves each venue now (session epochs);
- ``proxy``: the public URL map, forwarding one HTTP exchange over a tunnel stream;
- ``ratelimit``: per-venue request buckets (429) and refused-HELLO limits per address;
- ``metrics``: Prometheus ``/metrics``;
- ``cluster``: routing over NATS to the relay that holds a venue's tunnel;
- ``app``: the composition root, ``create_relay_app(config)``, and the ``/tunnel`` endpoint;
- ``server``: the listener, ``start_relay_server`` and ``run_relay``, and the stopping order.

The wire format is ``docs/tunnel-protocol.md``; the relay's behaviour is ``docs/relay.md``.
"""
