"""The one exception type for mistakes a user can make (flags, files, data)."""


class UserError(Exception):
    """A problem the user can fix; the command line prints it as one line, without a traceback."""
