"""The exact engine: numbers, polynomial rings with σ/ι atoms, zero tests and time budgets."""
