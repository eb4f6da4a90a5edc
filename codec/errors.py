"""Errors the codec reports to its users.  Every refusal is an ``NcError``
whose message is one line fit to print after ``error:``."""


class NcError(Exception):
    """Base of all codec errors."""


class FormatError(NcError):
    """The file is not a valid .nc file (magic, version, CRC, truncation, limits)."""


class WeightsMismatch(NcError):
    """The file needs model weights other than the ones installed."""


class UnsupportedImage(NcError):
    """The input image cannot be coded (mode, size)."""
