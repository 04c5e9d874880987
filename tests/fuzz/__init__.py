"""Property-based fuzzing of parsers and verifiers (hypothesis)."""
