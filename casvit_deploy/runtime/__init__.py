"""One loader (Runner) per artifact format, shared by parity and bench."""
