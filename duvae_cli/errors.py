"""The two kinds of failure the user sees. The CLI turns them into one line and an exit code."""


class DuvaeError(Exception):
    """A failure the user can act on (bad file, bad value): exit code 1, one line."""

    exit_code = 1


class UsageError(DuvaeError):
    """A wrong option or a command that cannot run as asked: exit code 2."""

    exit_code = 2

