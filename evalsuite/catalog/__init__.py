"""What evalsuite knows before running anything: the Pythia suite, the baselines, the tasks."""
