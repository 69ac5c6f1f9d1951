"""Everything that runs lm-eval: its task definitions, the requests they make, and scoring one
checkpoint against them. Imports lm_eval (and through it torch) inside functions only."""
