"""The serial driver and PBS1, its reference wire protocol (docs/drivers/serial.md)."""
