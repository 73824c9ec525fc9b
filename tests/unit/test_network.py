"""policies/network.py: X-Forwarded-For is believed from trusted proxies only, and only as far as they wrote it."""

from __future__ import annotations

import pytest

from plugin.policies.network import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.2", "10.1.0.0/16", "::1"])


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from a proxy: the header is anyone's
    ("10.0.0.2", None, "10.0.0.2"),
    ("10.0.0.2", "", "10.0.0.2"),
    ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the left part was written by the client
    ("10.0.0.2", "198.51.100.1, 10.1.4.4", "198.51.100.1"),  # through two trusted proxies
    ("10.0.0.2", "10.1.3.3, 10.1.4.4", "10.1.3.3"),  # all trusted: the first one
    ("10.0.0.2", "not-an-address, 10.1.4.4", "10.1.4.4"),
    ("10.0.0.2", "198.51.100.1, junk", "10.0.0.2"),
    ("10.0.0.2", "198.51.100.1:51234", "198.51.100.1"),
    ("10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"),
    ("::1", "2001:db8::7", "2001:db8::7"),
    ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.3", "198.51.100.1", "10.0.0.3"),
])
def test_client_address(peer, forwarded, expected):
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxy_means_the_peer_always():
    assert client_address("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


@pytest.mark.parametrize("bad", ["10.0.0.300", "proxy.example", "10.0.0.0/33", ""])
def test_bad_networks_are_refused(bad):
    with pytest.raises(ValueError):
        parse_networks([bad])
