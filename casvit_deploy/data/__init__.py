"""Images for parity, calibration and agreement checks: photographs (bundled with
scikit-image, or the user's folder) preprocessed as a manifest records, and seeded noise."""
