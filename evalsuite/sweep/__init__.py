"""`evalsuite run`: which checkpoints to evaluate, the loop over them, and their commits."""
