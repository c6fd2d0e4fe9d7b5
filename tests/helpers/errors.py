"""What a user sees when a run fails: one ``error: ...`` line, no traceback."""


def the_error_line(stderr: str) -> str:
    """The one ``error:`` message of a failed run's stderr; fails on a traceback or on several messages.

    The message may follow the last frame of the progress bar on the same line; it is returned from ``error:`` on.
    """
    assert "Traceback" not in stderr, stderr[-3000:]
    messages = [line[line.index("error:"):] for line in stderr.splitlines() if "error:" in line]
    assert len(messages) == 1, stderr[-3000:]
    return messages[0]
