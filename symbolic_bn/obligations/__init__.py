"""Proof obligations of graphs, decided exactly, collected in certificates."""
