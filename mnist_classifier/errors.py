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


def printable(name: str) -> str:
    """A file or folder name as it can be shown and written anywhere: bytes that are not UTF-8 (kept by
    ``os`` as surrogates, so the path still opens) become U+FFFD, and accents one code point (NFC), as a
    zip made on macOS (NFD) and one made elsewhere spell the same name."""
    import unicodedata

    return unicodedata.normalize("NFC", name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def shortened(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters for a one-line message, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def quoted(value, limit: int = 80) -> str:
    """A value as a message quotes it (its repr), cut to about ``limit`` characters: a list of 100,000
    numbers in a config file stays a line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
