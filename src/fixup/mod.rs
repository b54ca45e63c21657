//! Fixups: output patterns that trigger a healing command, then a retry.
