"""Values from links and from the store, made inert before they meet Streamlit's markdown.

st.info, st.warning, st.error, st.caption, st.markdown and progress texts render GitHub-flavoured
markdown, so a model name or a URL parameter such as `[sign in](https://evil.example)` would
become a link there, and `![x](https://evil.example/x.png)` a remote image. Every such value is
shown through `code()`: inline code, which markdown prints verbatim (no links, images, emphasis,
colour directives or math). Charts (Vega text) and tables (st.dataframe) show plain text already.
"""

from __future__ import annotations

import re

from evalsuite.names import printable

MAX_SHOWN = 200  # characters of one value; a link can carry kilobytes


def code(value: object, limit: int = MAX_SHOWN) -> str:
    """`value` as a markdown code span that shows exactly its text (control characters escaped)."""
    text = printable(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    # A span closes at the first run of exactly as many backticks as opened it: open with more
    # than the value's longest run. The spaces inside the fences are removed by markdown.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def codes(values) -> str:
    """A comma list of code spans."""
    return ", ".join(code(v) for v in values)
