"""Errors a user can act on. The CLI prints them as one line, never as a traceback."""


class LengenError(Exception):
    """Base class for errors that name a problem the user can fix."""


class ConfigError(LengenError):
    """An experiment file, flag or parameter is invalid."""


class TrainingDiverged(LengenError):
    """The loss became NaN or infinite."""
