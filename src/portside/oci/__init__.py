"""Pure OCI vocabulary: digests, names, media types and manifest parsing. No I/O."""
