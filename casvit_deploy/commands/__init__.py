"""One module per CLI command; each exposes a function named after its command."""
