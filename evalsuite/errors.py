"""The one exception type evalsuite raises for bad input or an unusable environment.

The CLI prints its message as a single line (no traceback) and exits with status 2.
"""


class EvalsuiteError(Exception):
    """A problem the user can fix: the message says what is wrong and what is valid."""
