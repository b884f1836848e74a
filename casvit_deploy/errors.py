"""Domain errors. The CLI turns each into a one-line message and its exit code."""


class CasvitError(Exception):
    """An error the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 2


class UsageError(CasvitError):
    """A bad option or argument."""


class CheckpointError(CasvitError):
    """A checkpoint that cannot be read, is unsafe, or does not fit a CAS-ViT variant."""


class ExportError(CasvitError):
    """An export that failed in its backend."""

    exit_code = 1


class BackendMissingError(CasvitError):
    """A backend package that is not installed."""


class ParityFailure(CasvitError):
    """An artifact whose outputs differ from the reference beyond tolerance."""

    exit_code = 1


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first non-empty line of `err`'s message (its type's name when it has none),
    cut to `limit` characters: how a third-party failure is reported in one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:limit]


class AccuracyFailure(CasvitError):
    """An artifact whose accuracy on labelled data drops more than allowed (`casvit eval` gate)."""

    exit_code = 1
