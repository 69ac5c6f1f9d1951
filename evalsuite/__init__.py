"""evalsuite: evaluate Pythia checkpoints with lm-eval, store every score in DuckDB, plot them."""

__version__ = "0.1.0"
