"""The reference collection-and-settlement service (the default system under test)."""
