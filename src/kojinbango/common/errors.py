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
