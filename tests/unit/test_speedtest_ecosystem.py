"""The speed-test server's LibreSpeed pieces and the classroom result: what the LAN may send."""

from __future__ import annotations

import pytest

from agent.speedtest.classroom import browser_sample, classroom_page
from agent.speedtest.ecosystem import PerMinute, parse_form, server_base, server_list
from common.wire import encode_samples


def test_telemetry_forms_multipart_and_urlencoded() -> None:
    """LibreSpeed sends FormData (multipart); its fallback is urlencoded: same fields."""
    boundary = "----WebKitFormBoundaryx1"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                    for k, v in (("dl", "20.26"), ("ul", "20.45"), ("ping", "2.30"),
                                 ("extra", '{"server":"区县中心"}')))
    body = (parts + f"--{boundary}--\r\n").encode()
    form = parse_form(body, f"multipart/form-data; boundary={boundary}")
    assert form == {"dl": "20.26", "ul": "20.45", "ping": "2.30", "extra": '{"server":"区县中心"}'}
    assert parse_form(b"dl=1.5&ul=2&extra=%7B%7D", "application/x-www-form-urlencoded") == \
        {"dl": "1.5", "ul": "2", "extra": "{}"}
    assert parse_form(b"\xff\xfe garbage", "multipart/form-data; boundary=x") == {}


@pytest.mark.parametrize(("host", "expected"), [
    ("10.20.0.5:8080", "http://10.20.0.5:8080/"),
    ("[fd00::1]:8080", "http://[fd00::1]:8080/"),
    ("hub.edu.cn", "http://hub.edu.cn/"),
    ('evil"><script>', "http://10.0.0.1:8080/"),  # not echoed: our own address instead
    ("a b:80", "http://10.0.0.1:8080/"),
    (None, "http://10.0.0.1:8080/"),
])
def test_server_base_echoes_only_a_sane_host(host: str | None, expected: str) -> None:
    """The server list names the address the client used, never a header it made up."""
    assert server_base(host, ("10.0.0.1", 8080)) == expected


def test_server_base_ipv6_socket() -> None:
    """Without a Host header, an IPv6 listening address is bracketed."""
    assert server_base(None, ("fd00::1", 8080, 0, 0)) == "http://[fd00::1]:8080/"  # type: ignore[arg-type]


def test_server_list_has_librespeed_cli_fields() -> None:
    """id, name, server, dlURL, ulURL, pingURL, getIpURL (and the sponsor fields)."""
    import orjson

    [entry] = orjson.loads(server_list("http://h:1/", "hub"))
    assert {"id", "name", "server", "dlURL", "ulURL", "pingURL", "getIpURL"} <= set(entry)


def test_per_minute_limit() -> None:
    """N events in a minute, then refused until the oldest is a minute old."""
    now = [0.0]
    limit = PerMinute(2, clock=lambda: now[0])
    assert [limit.allow(), limit.allow(), limit.allow()] == [True, True, False]
    now[0] = 60.0
    assert limit.allow()


def test_browser_sample_is_marked_and_passes_the_wire_contract() -> None:
    """A good result becomes a speedtest sample with method and classroom the collector takes."""
    body = b'{"classroom": "c-101", "down_mbps": 19.2, "up_mbps": 20.1, "rtt_ms": 6.2, ' \
           b'"jitter_ms": 1.0, "bytes": 31000000, "duration_s": 17.5}'
    sample = browser_sample(body, "http://10.0.0.1:8080/", 1_700_000_000_000)
    assert sample.kind == "speedtest" and sample.tags == {"server": "http://10.0.0.1:8080/"}
    assert sample.fields["method"] == "browser" and sample.fields["classroom"] == "c-101"
    encode_samples([sample])  # raises WireError if the contract refused it


@pytest.mark.parametrize(("body", "why"), [
    (b"[]", "JSON object"),
    (b"not json", "JSON object"),
    (b'{"classroom": "../etc", "down_mbps": 1, "up_mbps": 1, "rtt_ms": 1}', "classroom"),
    (b'{"classroom": "c1", "down_mbps": -1, "up_mbps": 1, "rtt_ms": 1}', "down_mbps"),
    (b'{"classroom": "c1", "down_mbps": 1e99, "up_mbps": 1, "rtt_ms": 1}', "down_mbps"),
    (b'{"classroom": "c1", "down_mbps": true, "up_mbps": 1, "rtt_ms": 1}', "down_mbps"),
    (b'{"classroom": "c1", "down_mbps": 1, "rtt_ms": 1}', "up_mbps"),
    (b'{"classroom": "c1", "down_mbps": 1, "up_mbps": 1, "rtt_ms": "1"}', "rtt_ms"),
])
def test_browser_sample_refuses_what_is_not_a_measurement(body: bytes, why: str) -> None:
    """Anything on the LAN can post: a bad result is one 400 naming the field, never stored."""
    with pytest.raises(ValueError, match=why):
        browser_sample(body, "http://h/", 0)


def test_classroom_page_is_ours_and_packaged() -> None:
    """The page ships in the package and uses no LibreSpeed code."""
    page = classroom_page().decode()
    assert "results/classroom" in page and "Speedtest" not in page and "<script>" in page
