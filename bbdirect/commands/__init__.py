"""One module per group of ``bbdirect`` sub-commands."""
