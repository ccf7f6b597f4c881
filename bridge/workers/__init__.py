"""HTTP worker processes in front of one owner process (``docs/scaling.md``)."""
