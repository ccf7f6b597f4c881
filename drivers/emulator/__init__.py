"""The POS emulator: the simulator's bills speaking each reference wire protocol."""
