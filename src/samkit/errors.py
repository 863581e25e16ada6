"""samkit's exceptions: every user-facing failure is one of these, with a message that says what
was given and what was expected."""

from __future__ import annotations


class SamkitError(Exception):
    """Base class of every error samkit raises on purpose."""


class CheckpointError(SamkitError):
    """A checkpoint file cannot be used: unreadable, not a checkpoint, wrong keys or shapes."""


class DownloadError(SamkitError):
    """Weights could not be fetched (offline, HTTP error, hash mismatch)."""


class PromptError(SamkitError, ValueError):
    """Prompts of a shape or type samkit does not accept."""


class SourceError(SamkitError, ValueError):
    """An image / video source that cannot be read."""


class ArgumentError(SamkitError, ValueError):
    """An argument or setting whose value samkit does not accept (names it and what was
    expected); a ``ValueError`` too, so callers catching that keep working."""


class DatasetError(SamkitError, ValueError):
    """A dataset path that is not a dataset in a format samkit reads."""


class FormatError(SamkitError, ValueError):
    """A label or annotation file (YOLO, COCO, LabelMe, mask PNG, data.yaml) that does not
    follow its format; the message names the file (and the line or entry where it can)."""


class ArgumentTypeError(SamkitError, TypeError):
    """An argument of a type samkit does not accept (names it and what was expected); a
    ``TypeError`` too, so callers catching that keep working."""


class UnknownKeyError(SamkitError, KeyError):
    """A name or key samkit has no entry for (an unknown model name, an image missing from a
    cache); a ``KeyError`` too. Unlike a plain ``KeyError`` it prints its message unquoted."""

    def __str__(self) -> str:
        return Exception.__str__(self)
