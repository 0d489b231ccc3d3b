"""The exception types for mistakes a user can make (flags, files, data) and for what the
machine refused (a full disk)."""


class UserError(Exception):
    """A problem the user can fix; the command line prints it as one line, without a traceback."""


class AgreedError(UserError):
    """A mistake rank 0 of a distributed run found and reported; the other ranks exit with it quietly."""


class SaveFailed(UserError):
    """A file could not be written (disk full, no permission); whatever was at the path is unchanged."""


def first_line(error: BaseException) -> str:
    """An exception's message in one line (its first), or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
