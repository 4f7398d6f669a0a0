"""Task slices: everything one task needs (pre-processing, predict, evaluation, training task, export graph)."""
