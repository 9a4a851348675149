"""TorchLean-style tape graphs: node kinds, graphs (evaluate, jvp, backprop) and the BN graph."""
