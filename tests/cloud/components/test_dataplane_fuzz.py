"""Fuzzing the data plane's parsers: signed-URL query strings and Range headers never fail in any way but
their own error, and what they accept is exactly right."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.cloud.dataplane.ranges import RangeNotSatisfiableError, parse_range
from edgewise.cloud.dataplane.signing import SignatureError, UrlSigner, artifact_path, parse_signed_query

NOW = 1_764_100_000.0
KEY = bytes(range(32))
SIGNER = UrlSigner(KEY, "https://cloud:8443", clock=lambda: NOW)
digests = st.binary(max_size=64).map(lambda data: hashlib.sha256(data).hexdigest())
query_text = st.text(
    alphabet=st.sampled_from("expiresignatu=&%;+-_.0123456789abcdefABCDEF xyz\x00\u00e9"), max_size=200
)


@given(query_text)
def test_any_query_string_parses_or_raises_signature_error(query: str) -> None:
    try:
        expires, signature = parse_signed_query(query)
    except SignatureError:
        return
    assert 0 <= expires < 10**12
    assert len(signature) == 64


@given(digests, query_text)
def test_no_made_up_query_passes_the_check(sha256: str, query: str) -> None:
    try:
        SIGNER.check(artifact_path(sha256), query)
    except SignatureError:
        return
    raise AssertionError(f"accepted {query!r}")


@given(digests, st.integers(min_value=1, max_value=86400))
def test_a_signed_url_passes_for_its_own_path_only(sha256: str, lifetime: int) -> None:
    url = SIGNER.sign(sha256, lifetime=lifetime)
    path, query = url.removeprefix("https://cloud:8443").split("?")
    SIGNER.check(path, query)
    other = hashlib.sha256(sha256.encode()).hexdigest()
    with pytest.raises(SignatureError, match="does not match"):
        SIGNER.check(artifact_path(other), query)


@given(digests, st.integers(min_value=0, max_value=63), st.sampled_from("0123456789abcdef"))
def test_changing_any_signature_digit_is_refused(sha256: str, index: int, digit: str) -> None:
    url = SIGNER.sign(sha256)
    path, query = url.removeprefix("https://cloud:8443").split("?")
    signature = query.split("signature=")[1]
    if signature[index] == digit:
        return
    changed = query.replace(signature, signature[:index] + digit + signature[index + 1 :])
    with pytest.raises(SignatureError, match="does not match"):
        SIGNER.check(path, changed)


@given(st.one_of(st.none(), st.text(max_size=60)), st.integers(min_value=0, max_value=10**12))
def test_any_range_header_gives_a_span_inside_the_file_or_a_known_outcome(
    header: str | None, size: int
) -> None:
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiableError:
        return
    if span is not None:
        first, last = span
        assert 0 <= first <= last < size


@given(
    st.integers(min_value=0, max_value=10**6),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    st.integers(min_value=0, max_value=10**6),
)
def test_well_formed_ranges_follow_the_rfc(first: int, last: int | None, size: int) -> None:
    header = f"bytes={first}-{'' if last is None else last}"
    if last is not None and last < first:
        assert parse_range(header, size) is None
        return
    if first >= size:
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(header, size)
        return
    expected_last = size - 1 if last is None else min(last, size - 1)
    assert parse_range(header, size) == (first, expected_last)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_suffix_ranges_take_the_end_of_the_file(suffix: int, size: int) -> None:
    if suffix == 0 or size == 0:
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(f"bytes=-{suffix}", size)
        return
    assert parse_range(f"bytes=-{suffix}", size) == (max(0, size - suffix), size - 1)
