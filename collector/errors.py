"""The one error hierarchy of inboxtrail.

Every stage raises these (never bare exceptions) for conditions a user can act on; the CLI maps
each class to a message and an exit code in one place (``inboxtrail.cli``). Problems with single
files inside a source are *not* errors: they become manifest outcomes or parser warnings so that
one bad file never stops a run.
"""

from __future__ import annotations


class InboxtrailError(Exception):
    """Base class: an expected failure the user can fix; the message says how."""

    exit_code = 5


class SourceNotFoundError(InboxtrailError):
    """The source path (image, directory or file) does not exist or cannot be read."""

    exit_code = 3


class UnrecognisedSourceError(InboxtrailError):
    """The source exists but no supported container, volume or file system was found in it."""

    exit_code = 3


class OutputExistsError(InboxtrailError):
    """The output directory holds another run; refusing to overwrite without ``--force``."""

    exit_code = 4


class BundleError(InboxtrailError):
    """A bundle or stage output is missing or malformed (e.g. ``parse`` on a non-bundle)."""

    exit_code = 5


class VerificationError(InboxtrailError):
    """``verify`` found files whose hashes or sizes differ from the manifest."""

    exit_code = 1
