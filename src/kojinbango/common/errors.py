"""Errors a business operation raises to say what is wrong with its input (never with identifiers)."""

from __future__ import annotations


class BusinessError(Exception):
    """The request cannot be carried out as asked; the message says why.  HTTP 422."""

    status = 422


class NotFound(BusinessError):
    status = 404


class Conflict(BusinessError):
    status = 409


class Unauthorised(BusinessError):
    """The (correctly signed) caller is not an organisation allowed to make this request."""

    status = 401


class UpstreamRefused(BusinessError):
    """Another organisation refused this organisation's own signed call (its key or certificate is
    not trusted there, or it may not make that call).  Not a fault of this organisation's caller,
    whose own signature was accepted, so HTTP 502 rather than 401."""

    status = 502
