"""The process `evalsuite dashboard` becomes (launch.py): the app's modules are imported first,
then Streamlit's own command line runs the server.

Why: the views import Altair, the statistics and the store's queries, about 1.4 s on the 2-core
VM. Imported by the first page's script run, that time was part of the first page anyone opened;
here it is spent before the server answers. Streamlit's script runner finds them imported (it
runs app.py itself, as before), and their caches are made at their first call, once the server
is up, so they are the server's as before.
"""

from __future__ import annotations

import importlib
import logging
import sys

from streamlit.web.cli import main


def preload() -> None:
    """Import the app (its page is drawn only when Streamlit runs it) and so every module it uses,
    quietly: st.cache_data checks its settings as each function is decorated and, with no server
    running yet, warns once per function that it has none."""
    quiet = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        importlib.import_module("dashboard.app")
    finally:
        quiet.setLevel(level)


if __name__ == "__main__":
    preload()
    sys.exit(main(prog_name="streamlit"))
