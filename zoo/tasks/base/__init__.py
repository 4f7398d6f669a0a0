"""What every task slice implements: its TaskSpec, the training contract, recipes, the export graph spec."""
