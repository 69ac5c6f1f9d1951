"""One module per dashboard view; each exposes `render(scores, runs, path)` and builds its own pickers."""
