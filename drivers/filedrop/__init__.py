"""The file-drop driver (``file:///path``): docs/drivers/file-drop.md."""
