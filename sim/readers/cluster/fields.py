"""One field at a time: each check takes a value, returns it typed, or fails saying what it found.

`FieldChecker` also keeps what thousands of similar objects share (labels, IP
addresses, namespaces) so each is checked once.
"""

from __future__ import annotations

import socket
from datetime import date
from ipaddress import AddressValueError, IPv4Address, IPv4Network, IPv6Address, NetmaskValueError
from typing import Any, NoReturn

from model.packet import Proto
from sim.readers.cluster.documents import Key
from sim.readers.cluster.messages import At, Report
from sim.readers.cluster.names import (
    DNS1035_LABEL,
    DNS1035_RULE,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    IANA_SVC_NAME,
    LABEL_NAME,
    LABEL_RULE,
    LABEL_VALUE,
    PORT_NAME_RULE,
    SUBDOMAIN_RULE,
)
from sim.readers.cluster.quoting import quoted, show, yaml_type

__all__ = ["FieldChecker"]

_PROTOCOLS = {"TCP": Proto.TCP, "UDP": Proto.UDP, "SCTP": Proto.SCTP}


class FieldChecker:
    """Checks fields of the objects in one read, telling `report` what is wrong."""

    def __init__(self, report: Report) -> None:
        self.report = report
        # Validated labels and addresses, shared between the pods that have
        # the same ones: thousands of replicas differ only in name and IP.
        self._labels: dict[tuple[tuple[object, object], ...], tuple[tuple[str, str], ...]] = {}
        self._ips: dict[str, IPv4Address] = {}
        # Each namespace and node name once, however many objects name it.
        self._names: dict[str, str] = {"default": "default"}
        self._last_labels: tuple[object, tuple[tuple[str, str], ...]] = (object(), ())

    def shared(self, name: str) -> str:
        """`name` (a node's, a namespace's), one string however many objects hold it."""
        return self._names.setdefault(name, name)

    def fail(self, at: At | None, field: tuple[Key, ...], reason: str) -> NoReturn:
        """Stop reading: `field` of the object `at` is wrong for `reason`."""
        self.report.fail(at, field, reason)

    def warn(self, sort: str, at: At | None, field: tuple[Key, ...], reason: str) -> None:
        """Note a warning about `field` of `at`; `sort` groups like ones."""
        self.report.warn(sort, at, field, reason)

    def mapping(self, at: At, value: object, field: tuple[Key, ...]) -> dict[str, Any]:
        """A mapping; an absent one is empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(at, field, f"must be a mapping, not {yaml_type(value)}")
        return value

    def sequence(self, at: At, value: object, field: tuple[Key, ...]) -> list[Any]:
        """A list; an absent one is empty."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(at, field, f"must be a list, not {yaml_type(value)}")
        return value

    def string(self, at: At, value: object, field: tuple[Key, ...]) -> str:
        """A string, required."""
        if not isinstance(value, str):
            if value is None:
                self.fail(at, field, "required")
            quote = "; quote it" if isinstance(value, bool | int | float | date) else ""
            self.fail(at, field, f"must be a string, not {yaml_type(value)} ({show(value)}){quote}")
        return value

    def boolean(self, at: At, value: object, field: tuple[Key, ...], default: bool) -> bool:
        """true or false; `default` when absent."""
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(at, field, f"must be true or false, not {yaml_type(value)} ({show(value)})")
        return value

    def integer(
        self, at: At, value: object, field: tuple[Key, ...], low: int, high: int, what: str
    ) -> int:
        """A whole number from `low` to `high`, required; `what` says what it counts."""
        if isinstance(value, bool) or not isinstance(value, int):
            if value is None:
                self.fail(at, field, "required")
            if isinstance(value, float) and value == value and abs(value) != float("inf"):
                self.fail(at, field, f"must be a whole number, not {value:g}")
            self.fail(at, field, f"must be a number, not {yaml_type(value)} ({quoted(value)})")
        if not low <= value <= high:
            self.fail(at, field, f"{value} is not {what} ({low}-{high})")
        return value

    def port(self, at: At, value: object, field: tuple[Key, ...]) -> int:
        """A port number, 1-65535, required."""
        return self.integer(at, value, field, 1, 65535, "a port number")

    def protocol(self, at: At, value: object, field: tuple[Key, ...]) -> Proto:
        """TCP, UDP or SCTP; TCP when absent."""
        if value is None:
            return Proto.TCP
        proto = _PROTOCOLS.get(value) if isinstance(value, str) else None
        if proto is None:
            self.fail(at, field, f"{quoted(value)} is not a protocol (TCP, UDP or SCTP)")
        return proto

    def port_name(self, at: At, name: str, field: tuple[Key, ...]) -> None:
        """Fail unless `name` is an IANA service name (a container port's name)."""
        if (
            len(name) > 15
            or not IANA_SVC_NAME.fullmatch(name)
            or "--" in name
            or not any(c.isalpha() for c in name)
        ):
            self.fail(at, field, f"{quoted(name)} {PORT_NAME_RULE}")

    def dns_label(self, at: At, name: str, field: tuple[Key, ...]) -> None:
        """Fail unless `name` is a DNS-1123 label."""
        if len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            self.fail(at, field, LABEL_RULE)

    def ipv4(self, at: At, value: object, field: tuple[Key, ...]) -> IPv4Address:
        """The IPv4 address in `value`."""
        if isinstance(value, str):
            cached = self._ips.get(value)
            if cached is not None:
                return cached
        address = self.ipv4_dual(at, value, field, dual=False)
        assert address is not None  # not dual: an IPv6 address fails instead
        return address

    def ipv4_dual(
        self, at: At, value: object, field: tuple[Key, ...], dual: bool = True
    ) -> IPv4Address | None:
        """The IPv4 address in `value`; None for an IPv6 one of a dual-stack list."""
        if isinstance(value, str):
            cached = self._ips.get(value)
            if cached is not None:
                return cached
            try:
                # inet_pton is as strict as IPv4Address() (no leading zeros,
                # no short forms) and ten times faster on 150,000 pod IPs.
                address = IPv4Address(int.from_bytes(socket.inet_pton(socket.AF_INET, value)))
            except (OSError, ValueError):
                pass
            else:
                self._ips[value] = address
                return address
            if dual and ":" in value:
                try:
                    IPv6Address(value)
                except ValueError:
                    pass
                else:
                    self.warn(
                        "IPv6 addresses skipped",
                        at,
                        field,
                        f"skipped IPv6 address {value} (kubehop simulates IPv4 only)",
                    )
                    return None
        if value is None:
            self.fail(at, field, "required")
        if isinstance(value, str) and ":" in value:
            self.fail(at, field, f"{quoted(value)} is IPv6; kubehop simulates IPv4 only")
        self.fail(at, field, f"{quoted(value)} is not an IPv4 address")

    def network(
        self, at: At, value: object, field: tuple[Key, ...], dual: bool = False
    ) -> IPv4Network | None:
        """The IPv4 CIDR in `value`; None for an IPv6 one when `dual` allows it."""
        if isinstance(value, str):
            try:
                # Kubernetes parses CIDRs sloppily: host bits may be set.
                return IPv4Network(value.strip(), strict=False)
            except (AddressValueError, NetmaskValueError, ValueError):
                if dual and ":" in value:
                    self.warn(
                        "IPv6 addresses skipped",
                        at,
                        field,
                        f"skipped IPv6 CIDR {value} (kubehop simulates IPv4 only)",
                    )
                    return None
        self.fail(at, field, f"{quoted(value)} is not an IPv4 CIDR (like 10.244.0.0/16)")

    def labels(self, at: At, value: object, field: tuple[Key, ...]) -> tuple[tuple[str, str], ...]:
        """A label mapping as sorted (key, value) pairs; none when absent."""
        if not value:
            return ()
        if not isinstance(value, dict):
            self.fail(at, field, f"must be a mapping, not {yaml_type(value)}")
        if value == self._last_labels[0]:
            return self._last_labels[1]  # replicas come one after another
        raw = tuple(value.items())
        try:
            cached = self._labels.get(raw)
        except TypeError:  # a value that is a mapping or a list: checked (and refused) below
            cached = None
        if cached is not None:
            self._last_labels = (value, cached)
            return cached
        for key, val in raw:
            self.label_key(at, key, field)
            if not isinstance(val, str):
                self.fail(
                    at,
                    (*field, str(key)),
                    f"must be a string, not {yaml_type(val)} ({show(val)}); quote it",
                )
            if len(val) > 63 or not LABEL_VALUE.fullmatch(val):
                self.fail(
                    at,
                    (*field, key),
                    f"{quoted(val)} is not a label value: at most 63 letters, digits, '-', '_'"
                    " and '.', starting and ending with a letter or digit",
                )
        pairs = tuple(sorted(raw))
        self._labels[raw] = pairs
        self._last_labels = (value, pairs)
        return pairs

    def label_key(self, at: At, key: object, field: tuple[Key, ...]) -> None:
        """Fail unless `key` is a label key: an optional DNS prefix and '/', then a name."""
        if not isinstance(key, str):
            self.fail(at, field, f"key {show(key)} must be a string; quote it")
        prefix, slash, name = key.rpartition("/")
        if (
            len(name) > 63
            or not LABEL_NAME.fullmatch(name)
            or (slash and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)))
        ):
            self.fail(
                at,
                (*field, key),
                f"{quoted(key)} is not a label key: an optional DNS subdomain and '/', then at"
                " most 63 letters, digits, '-', '_' and '.', starting and ending with a"
                " letter or digit",
            )

    def metadata(
        self, at: At, obj: dict[str, Any], *, namespaced: bool, dns1035: bool = False
    ) -> tuple[dict[str, Any], str, str]:
        """metadata, its checked name and namespace ("" for a cluster-scoped kind)."""
        meta = self.mapping(at, obj.get("metadata"), ("metadata",))
        name = meta.get("name")
        namespace = ""
        if namespaced:
            # Kubernetes puts an object with no namespace in "default".
            given = meta.get("namespace")
            if given is None or given == "":
                given = "default"
            at.namespace = given if isinstance(given, str) else show(given)
            known = self._names.get(given) if type(given) is str else None
            if known is None:
                namespace = self.string(at, given, ("metadata", "namespace"))
                self.dns_label(at, namespace, ("metadata", "namespace"))
                self._names[namespace] = namespace
            else:
                namespace = known
        name = self.string(at, name, ("metadata", "name"))
        if dns1035:
            if len(name) > 63 or not DNS1035_LABEL.fullmatch(name):
                self.fail(at, ("metadata", "name"), DNS1035_RULE)
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
            self.fail(at, ("metadata", "name"), SUBDOMAIN_RULE)
        return meta, name, namespace
