"""Kubernetes' naming rules: the patterns a name must match and how a message states them.

The patterns are k8s.io/apimachinery/pkg/util/validation's.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""A namespace, a container or a port name: one DNS label."""

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""Most objects' names, and label-key prefixes: dotted DNS labels."""

DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
"""A Service's name: a DNS label that starts with a letter."""

IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
"""A container port's name (with a letter and no '--', checked apart)."""

LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
"""A label key's name part, after any prefix and '/'."""

LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
"""A label's value (empty allowed)."""

IFNAME = re.compile(r"[^/:\s\x00-\x1f\x7f-\x9f]{1,15}")
"""A Linux interface name's characters: no '/', ':', whitespace or control characters.

The kernel (dev_valid_name) refuses '/', ':' and whitespace; control characters
it would take, but no tool prints them safely. Use `is_ifname`, which also counts bytes.
"""

IFNAME_RULE = (
    "must be an interface name Linux accepts: 1-15 bytes, not '.' or '..',"
    " no '/', ':', whitespace or control characters"
)
"""What a name failing `is_ifname` is told."""

SUBDOMAIN_RULE = (
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.',"
    " starting and ending with a letter or digit, at most 253 characters"
)
"""What a name failing `DNS1123_SUBDOMAIN` is told."""

LABEL_RULE = (
    "must be a DNS-1123 label: lowercase letters, digits and '-',"
    " starting and ending with a letter or digit, at most 63 characters"
)
"""What a name failing `DNS1123_LABEL` is told."""

DNS1035_RULE = (
    "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter,"
    " ending with a letter or digit, at most 63 characters"
)
"""What a name failing `DNS1035_LABEL` is told."""

PORT_NAME_RULE = (
    "must be an IANA_SVC_NAME: at most 15 lowercase letters, digits and '-',"
    " with at least one letter, no '--', starting and ending with a letter or digit"
)
"""What a port name failing `IANA_SVC_NAME` is told."""


def is_ifname(name: str) -> bool:
    """Whether Linux would name a network interface `name`."""
    # IFNAMSIZ is 16 bytes with the terminating NUL, so 15 bytes of UTF-8, not 15 characters.
    return (
        IFNAME.fullmatch(name) is not None
        and len(name.encode("utf-8", "surrogatepass")) <= 15
        and name not in (".", "..")
    )
