"""The exception types for mistakes a user can make (flags, files, data) and for what the
machine refused (a full disk)."""


class UserError(Exception):
    """A problem the user can fix; the command line prints it as one line, without a traceback."""


class ParameterError(UserError):
    """A refused value of one parameter. The message begins with the parameter's name, as the library
    speaks (``lr must be positive, got 0``); the command line shows it as its flag (``in_flags``)."""


class AgreedError(UserError):
    """A mistake rank 0 of a distributed run found and reported; the other ranks exit with it quietly."""


class SaveFailed(UserError):
    """A file could not be written (disk full, no permission); whatever was at the path is unchanged."""


def in_flags(error: UserError) -> str:
    """The message as the command line says it: a parameter's name as its flag (``--lr must be ...``)."""
    return f"--{error}" if isinstance(error, ParameterError) else str(error)


def first_line(error: BaseException) -> str:
    """An exception's message in one line (its first), or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
