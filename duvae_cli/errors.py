"""The two kinds of failure the user sees. The CLI turns them into one line and an exit code."""


class DuvaeError(Exception):
    """A failure the user can act on (bad file, bad value): exit code 1, one line."""

    exit_code = 1


class OutputClosed(Exception):
    """The reader of stdout went away (`duvae generate ... | head`): not a failure; the command ends
    at once, quietly, exit 0 (cli.main). Raised by `io.write_stdout`."""


class UsageError(DuvaeError):
    """A wrong option or a command that cannot run as asked: exit code 2."""

    exit_code = 2

