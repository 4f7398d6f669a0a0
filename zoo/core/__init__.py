"""Core: errors, atomic file io, the model registry and factory, checkpoints, seeding and processes."""
