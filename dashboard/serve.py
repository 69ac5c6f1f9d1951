"""The process `evalsuite dashboard` becomes (launch.py): the app's modules are imported first,
then Streamlit's own command line runs the server.

Why: the views import Altair, the statistics and the store's queries, about 1.4 s on the 2-core
VM. Imported by the first page's script run, that time was part of the first page anyone opened;
here it is spent before the server answers. Streamlit's script runner finds them imported (it
runs app.py itself, as before), and their caches are made at their first call, once the server
is up, so they are the server's as before.
"""

from __future__ import annotations

import sys

from streamlit.web.cli import main

# what app.py imports, for the time it takes (above)
from dashboard import data, state  # noqa: F401
from dashboard.views import compare, items, runs, scaling, signal, training  # noqa: F401

if __name__ == "__main__":
    sys.exit(main(prog_name="streamlit"))
