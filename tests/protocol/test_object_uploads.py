"""The object upload request shared by the device and the cloud: bucket and key rules as the ``stream-manager``
SDK states them, and the request target built from them."""

from __future__ import annotations

import re
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st
from stream_manager import S3ExportTaskDefinition

from edgewise.protocol.object_uploads import UPLOAD_PATH, bucket_problem, key_problem, upload_target

#: The SDK's own patterns for S3ExportTaskDefinition.
SDK_BUCKET = re.compile(S3ExportTaskDefinition._validations_map["bucket"]["pattern"])
SDK_KEY = re.compile(S3ExportTaskDefinition._validations_map["key"]["pattern"])


@given(
    st.text(max_size=70)
    | st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)
    | st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){1,3}", fullmatch=True)
)
def test_a_bucket_is_accepted_only_when_the_sdk_accepts_it(bucket: str) -> None:
    assert (bucket_problem(bucket) is None) == (SDK_BUCKET.search(bucket) is not None)


@given(st.text(min_size=1, max_size=300))
def test_a_key_the_sdk_refuses_is_refused_and_an_accepted_key_survives_its_target(key: str) -> None:
    problem = key_problem(key)
    if SDK_KEY.search(key) is None:
        assert problem is not None
    if problem is None:
        target = upload_target("bucket", key)
        assert target.startswith(UPLOAD_PATH + "bucket/")
        assert target.isascii()
        assert unquote(target[len(UPLOAD_PATH + "bucket/") :]) == key


def test_bad_names_are_explained() -> None:
    assert "IP address" in str(bucket_problem("192.168.1.1"))
    for bad in ("a..b", "a-.b", "-ab", "ab-", "AB1", "a_b", "ab"):
        assert bucket_problem(bad) is not None, bad
    assert "1024" in str(key_problem("k" * 1025))
    assert "templates" in str(key_problem("logs/!{timestamp:yyyy}/x"))
    assert "'{'" in str(key_problem("a{b"))
