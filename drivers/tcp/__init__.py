"""The TCP driver: PBT1 frames over a TCP connection (docs/drivers/tcp.md)."""
