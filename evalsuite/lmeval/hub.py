"""Asking the Hugging Face Hub one quick question before a download.

huggingface_hub and datasets retry an unreachable Hub for a minute or more per file; evalsuite
asks once, with a short timeout and no retries, whether the model revision or data set is there,
and turns a "no" into a one-line error that says how to use local files instead.
"""

from __future__ import annotations

import urllib.error
import urllib.request

TIMEOUT_S = 10  # seconds before an unreachable Hub is reported, instead of a long hang
MISSING = "the Hub has no such revision or repository"  # about one checkpoint, not the Hub


def unreachable(api_path: str) -> str | None:
    """Why `{endpoint}/api/<api_path>` cannot be had (offline mode, no such thing, no network), or
    None. In offline mode (HF_HUB_OFFLINE=1) nothing is asked: the answer is always no."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, and it is not in the local cache"
    request = urllib.request.Request(f"{constants.ENDPOINT}/api/{api_path}", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        return MISSING if exc.code == 404 else f"the Hub answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"the Hub ({constants.ENDPOINT}) is unreachable: {getattr(exc, 'reason', exc)}"
    return None


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
