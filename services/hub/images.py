"""Container image references, checked as the OCI distribution spec and Docker's reference grammar write them."""

from __future__ import annotations

import re

from services.common.errors import InvalidArgument

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE = re.compile(rf"^(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?$", re.ASCII)
_NOT_IMAGE_CHAR = re.compile(r"[^a-zA-Z0-9._:/@+\[\]-]")
MAX_IMAGE_CHARS = 512


def shown(text: str) -> str:
    """A value as an error message shows it: quoted, and cut to 80 characters."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def check_image(image: str, field: str) -> None:
    if not image:
        raise InvalidArgument("an image is required", field=field)
    if len(image) > MAX_IMAGE_CHARS:
        raise InvalidArgument(f"longer than {MAX_IMAGE_CHARS} characters", field=field)
    bad = _NOT_IMAGE_CHAR.search(image)
    if bad is not None:
        raise InvalidArgument(
            f"character {bad.group()!r} is not allowed in an image reference (no spaces, shell metacharacters "
            "or control characters)",
            field=field,
        )
    match = IMAGE.match(image)
    if match is None or len(match["name"]) > 255:
        raise InvalidArgument(
            f"{shown(image)} is not an image reference ([registry[:port]/]path[:tag][@digest], "
            "lower-case path)",
            field=field,
        )
