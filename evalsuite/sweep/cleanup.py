"""`--cleanup`: free the Hugging Face cache behind a sweep.

`cleanup_job(cfg, job) -> int` is what a sweep (local, or a Ray worker on its node) calls after
each evaluated job. `cleanup_revision(repo_id, revision, cache_dir=None) -> int` deletes one revision (a ref such as
"step1000", or a commit hash) of a model repo from the Hugging Face hub cache, through
huggingface_hub's `scan_cache_dir().delete_revisions()`: its snapshot and refs go, blobs go only
when no other cached revision uses them. Returns the bytes freed; 0 when the revision (or the
cache) is not there. A full sweep of a 12B model is ~3.5 TB of weights: without this, the disk
fills long before the sweep ends.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.plan import Job, checkpoint_for


def cleanup_job(cfg: RunConfig, job: Job) -> int:
    """After a job is evaluated, with --cleanup: its Hub revision out of this machine's HF cache
    (a local checkpoint, or none asked for: nothing). Returns the bytes freed."""
    if not cfg.cleanup:
        return 0
    ckpt = checkpoint_for(cfg, job.model, job.step)
    return cleanup_revision(ckpt.repo_id, ckpt.revision) if ckpt.repo_id and ckpt.revision else 0


def cleanup_revision(repo_id: str, revision: str, cache_dir: str | Path | None = None) -> int:
    """Delete `repo_id`@`revision` from the HF hub cache; other revisions keep shared blobs."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return 0
    hashes = [
        rev.commit_hash
        for repo in info.repos if repo.repo_id == repo_id and repo.repo_type == "model"
        for rev in repo.revisions if rev.commit_hash == revision or revision in rev.refs
    ]
    if not hashes:
        return 0
    strategy = info.delete_revisions(*hashes)
    strategy.execute()
    return strategy.expected_freed_size
