"""The view's state in the URL: every picker reads its start value from st.query_params and writes
its current value back, so a copied link reopens the same view.

A value the link names but the store does not hold (a typo, a model not imported here) becomes a
warning and the default, never an exception. Values are also remembered per session, so going to
another view and back keeps the pickers where they were even though the URL only carries the
current view's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from dashboard.text import code, codes

_USED = "_url_keys_used"  # keys rendered this rerun with a non-default value: these go into the URL


def begin() -> None:
    st.session_state[_USED] = []


def _start_value(key: str, options: Sequence, default, multi: bool):
    """The URL's value if valid, else what this session last had, else the default."""
    raw = st.query_params.get_all(key) if key in st.query_params else None
    if raw:
        wanted = [part for item in raw for part in str(item).split(",") if part != ""] if multi else [raw[-1]]
        by_text = {str(o): o for o in options}
        known = [by_text[w] for w in wanted if w in by_text]
        unknown = [w for w in wanted if w not in by_text]
        if unknown:  # the link is anyone's text: shown as inert code, never as markdown
            shown = codes(options[:12]) + (" ..." if len(options) > 12 else "")
            st.warning(f"The link asks for {code(key)} = {codes(unknown[:5])}, which this store does "
                       f"not hold; using {'the rest' if multi and known else 'the default'}. "
                       f"Available: {shown or 'none'}.")
        if multi:
            return known if known else list(default)
        if known:
            return known[0]
    remembered = st.session_state.get(f"_keep_{key}")
    if multi and isinstance(remembered, list):
        kept = [v for v in remembered if v in options]
        return kept or list(default)
    if not multi and remembered in options:
        return remembered
    return list(default) if multi else default


def _prime(key: str, options: Sequence, default, multi: bool) -> None:
    current = st.session_state.get(key)
    valid = (isinstance(current, list) and all(v in options for v in current)) if multi \
        else current in options
    if key not in st.session_state or not valid:
        st.session_state[key] = _start_value(key, options, default, multi)


def _record(key: str, value, default, always: bool = False) -> None:
    st.session_state[f"_keep_{key}"] = value
    # a value equal to its default stays out of the link, which keeps links short and readable;
    # `always`: a default that depends on the store's contents, so the link must say the value
    if value != default or always:
        st.session_state.setdefault(_USED, []).append(key)


def choice(widget: Callable, label: str, key: str, options: Sequence, default, always: bool = False, **kwargs):
    """A single-choice picker (selectbox, radio, segmented control) bound to URL key `key`
    (`always`: in the link even at its default)."""
    options = list(options)
    if default not in options and options:
        default = options[0]
    _prime(key, options, default, multi=False)
    value = widget(label, options, key=key, **kwargs)
    _record(key, value, default, always)
    return value


def multi(label: str, key: str, options: Sequence, default: Sequence, container=st, **kwargs) -> list:
    """A multiselect bound to URL key `key` (a comma list in the link)."""
    options = list(options)
    default = [d for d in default if d in options]
    _prime(key, options, default, multi=True)
    value = container.multiselect(label, options, key=key, **kwargs)
    _record(key, list(value), default)
    return list(value)


def flag(widget: Callable, label: str, key: str, default: bool, **kwargs) -> bool:
    """A checkbox/toggle bound to URL key `key` ('1'/'0' in the link)."""
    if key not in st.session_state:
        raw = st.query_params.get(key)
        remembered = st.session_state.get(f"_keep_{key}")
        if raw in ("0", "1"):
            st.session_state[key] = raw == "1"
        else:
            st.session_state[key] = remembered if isinstance(remembered, bool) else default
    value = bool(widget(label, key=key, **kwargs))
    _record(key, value, default)
    return value


def write_url() -> None:
    """Put exactly the rendered pickers' values into the URL."""
    params = {}
    for key in st.session_state.get(_USED, []):
        value = st.session_state.get(f"_keep_{key}")
        if isinstance(value, bool):
            params[key] = "1" if value else "0"
        elif isinstance(value, list):
            params[key] = ",".join(map(str, value))
        elif value is not None:
            params[key] = str(value)
    if dict(st.query_params.to_dict()) != params:
        st.query_params.from_dict(params)
