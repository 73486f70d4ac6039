"""The one exception type that faces turn into a clear one-line message.

Every user mistake (bad name, bad file, bad size, bad token) raises a subclass of `LenscopeError`
whose message says what is wrong and what to do. The CLI prints it on one line and exits non-zero;
the server turns it into a 4xx JSON body. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LenscopeError(Exception):
    """A user-facing error: the message is the whole story."""


class ModelNotFoundError(LenscopeError):
    """No shipped, trained or local model matches the name or path."""


class CheckpointError(LenscopeError):
    """A checkpoint is missing a file, is corrupt, or does not match its config."""


class UnsupportedArchitectureError(LenscopeError):
    """A checkpoint's architecture is not one lenscope converts."""


class ArtifactError(LenscopeError):
    """An artifact directory has a bad or missing manifest, kind, version or shape."""


class InputError(LenscopeError):
    """A prompt, token, node id, position or size given by the user is invalid."""


class CorpusError(LenscopeError):
    """A corpus file cannot be read as text."""
