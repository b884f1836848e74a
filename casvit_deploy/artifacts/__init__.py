"""The artifact contract every format implements and every layer above reads: what a format
is (format.py), its options and details (options.py, details.py), what a manifest holds
(manifest.py, records.py), the preprocessing it records, and an artifact's bytes (files.py).
Nothing here knows a particular format."""
