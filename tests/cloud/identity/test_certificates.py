from __future__ import annotations

import pytest

from edgewise.cloud.identity import (
    CertificateError,
    CertificateStatus,
    CertificateStatusError,
    IssuedCertificate,
    change_status,
)


def test_only_active_certificates_can_connect() -> None:
    assert [status for status in CertificateStatus if status.can_connect] == [CertificateStatus.ACTIVE]


def test_status_values_are_aws_spellings() -> None:
    assert [status.value for status in CertificateStatus] == [
        "ACTIVE",
        "INACTIVE",
        "REVOKED",
        "PENDING_TRANSFER",
    ]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (CertificateStatus.ACTIVE, CertificateStatus.INACTIVE),
        (CertificateStatus.INACTIVE, CertificateStatus.ACTIVE),
        (CertificateStatus.ACTIVE, CertificateStatus.REVOKED),
        (CertificateStatus.INACTIVE, CertificateStatus.REVOKED),
        (CertificateStatus.ACTIVE, CertificateStatus.PENDING_TRANSFER),
        (CertificateStatus.PENDING_TRANSFER, CertificateStatus.ACTIVE),
        (CertificateStatus.PENDING_TRANSFER, CertificateStatus.INACTIVE),
        (CertificateStatus.REVOKED, CertificateStatus.REVOKED),
    ],
)
def test_change_status_allows_the_lifecycle_transitions(
    current: CertificateStatus, target: CertificateStatus
) -> None:
    assert change_status(current, target) is target


@pytest.mark.parametrize(
    "target", [CertificateStatus.ACTIVE, CertificateStatus.INACTIVE, CertificateStatus.PENDING_TRANSFER]
)
def test_revoked_is_final(target: CertificateStatus) -> None:
    assert CertificateStatus.REVOKED.is_final
    with pytest.raises(CertificateStatusError, match="a certificate that is REVOKED cannot become") as caught:
        change_status(CertificateStatus.REVOKED, target)
    assert caught.value.current is CertificateStatus.REVOKED
    assert caught.value.target is target


def test_reading_something_that_is_not_a_certificate_names_the_field() -> None:
    with pytest.raises(
        CertificateError, match=r"^device_certificate: not a PEM X\.509 certificate"
    ) as caught:
        IssuedCertificate.from_pem("hello", field="device_certificate")
    assert caught.value.field == "device_certificate"
