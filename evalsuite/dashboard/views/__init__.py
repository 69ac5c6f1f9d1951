"""One module per dashboard view; each exposes `render(scores, runs)` and builds its own pickers."""
