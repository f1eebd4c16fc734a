"""Errors a user can cause. Each maps to an HTTP answer or a per-file job error."""


class PawdexError(Exception):
    """Base class: the message is shown to the user as is."""


class UnsupportedImage(PawdexError):
    """The bytes are not an image pawdex can read (wrong type, truncated, too large...)."""


class UnsupportedArchive(PawdexError):
    """The upload is not a zip or tar archive (whatever its name says)."""


class CorruptArchive(PawdexError):
    """The archive's structure cannot be read (truncated, bad central directory...)."""


class ArchiveLimitExceeded(PawdexError):
    """An archive-wide limit (members, total size) was reached; the rest is not read."""


class UnsafeArchiveMember(PawdexError):
    """A member that must not be extracted (link, device, traversal...)."""


class InvalidQuery(PawdexError):
    """A query parameter that cannot be honoured (an unknown model version...)."""


class InvalidCursor(InvalidQuery):
    """A pagination cursor that this server did not produce."""
