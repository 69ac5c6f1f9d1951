"""What evalsuite knows before running anything: the models (entries in builtin.yaml and the
user's models.yaml, their checkpoints found in folders or a repository's refs) and the tasks."""
