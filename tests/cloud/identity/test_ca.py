from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from edgewise.cloud.identity import CertificateAuthority, CertificateError, IssuedCertificate
from tests.support.pki import signing_request

NOW = datetime.datetime(2030, 1, 15, 12, 0, tzinfo=datetime.UTC)


def fixed_clock() -> datetime.datetime:
    return NOW


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Edgewise Test Root", valid_days=3650, clock=fixed_clock)


def ca_public_key(ca: CertificateAuthority) -> ec.EllipticCurvePublicKey:
    key = ca.certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def verify_client_chain(ca: CertificateAuthority, issued: IssuedCertificate) -> None:
    """Path validation with cryptography's verifier; device certificates carry no SAN, as AWS's don't."""
    leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store([ca.certificate]))
        .time(NOW)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy)
        .build_client_verifier()
    )
    verifier.verify(x509.load_pem_x509_certificate(issued.certificate_pem.encode()), [])


def test_sign_csr_issues_certificate_with_thing_name_as_cn_that_chains_to_the_ca(
    ca: CertificateAuthority,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = ca.sign_csr(
        signing_request("whatever-the-device-asked", key), common_name="sensor-1", valid_days=30
    )

    verify_client_chain(ca, issued)
    certificate = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert certificate.subject.rfc4514_string() == "CN=sensor-1"
    assert issued.common_name == "sensor-1"
    assert certificate.public_key() == key.public_key()
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_issued_certificate_id_is_sha256_of_der_and_serial_and_validity_match(
    ca: CertificateAuthority,
) -> None:
    issued, _ = ca.issue_with_new_key("sensor-1", valid_days=30)

    certificate = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert issued.certificate_id == certificate.fingerprint(hashes.SHA256()).hex()
    assert len(issued.certificate_id) == 64
    assert issued.serial == certificate.serial_number
    assert int(issued.serial_hex, 16) == issued.serial
    assert issued.not_before < NOW < issued.not_after
    assert issued.not_after == NOW + datetime.timedelta(days=30)
    assert IssuedCertificate.from_pem(issued.certificate_pem) == issued


def test_issue_with_new_key_returns_the_matching_private_key(ca: CertificateAuthority) -> None:
    issued, key_pem = ca.issue_with_new_key("sensor-2")

    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    certificate = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == certificate.public_key()
    verify_client_chain(ca, issued)


def test_sign_csr_accepts_rsa_2048(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = ca.sign_csr(signing_request("x", key), common_name="rsa-device")
    verify_client_chain(ca, issued)


def test_sign_csr_refuses_a_csr_whose_signature_does_not_verify(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = x509.load_pem_x509_csr(signing_request("aaaaaaaa", key).encode()).public_bytes(
        serialization.Encoding.DER
    )
    tampered = x509.load_der_x509_csr(der.replace(b"aaaaaaaa", b"bbbbbbbb"))
    pem = tampered.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(CertificateError, match="signature does not verify") as caught:
        ca.sign_csr(pem, common_name="sensor-1")
    assert caught.value.field == "csr"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA key of 1024 bits"),
        (ec.generate_private_key(ec.SECP256K1()), "EC curve secp256k1"),
        (ed25519.Ed25519PrivateKey.generate(), "Ed25519PublicKey keys are not accepted"),
    ],
)
def test_sign_csr_refuses_weak_or_unsupported_keys(
    ca: CertificateAuthority, key: object, problem: str
) -> None:
    csr = signing_request("x", key)  # type: ignore[arg-type]
    with pytest.raises(CertificateError, match=problem):
        ca.sign_csr(csr, common_name="sensor-1")


def test_sign_csr_refuses_text_that_is_not_a_csr(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match=r"^csr: not a PEM certificate signing request"):
        ca.sign_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n", common_name="a"
        )


@pytest.mark.parametrize(
    ("common_name", "problem"),
    [
        ("", "non-empty"),
        ("a" * 65, "at most 64"),
        ("room/1", "which a device name may not"),
        ("sensor+", "which a device name may not"),
        ("sensor#", "which a device name may not"),
        ("bad\nname", "control character"),
    ],
)
def test_device_common_name_must_be_usable_as_mqtt_user_name(
    ca: CertificateAuthority, common_name: str, problem: str
) -> None:
    with pytest.raises(CertificateError, match=problem) as caught:
        ca.issue_with_new_key(common_name)
    assert caught.value.field == "common_name"


@pytest.mark.parametrize("valid_days", [0, -1, 36501, True])
def test_valid_days_must_be_a_sensible_positive_number(ca: CertificateAuthority, valid_days: int) -> None:
    with pytest.raises(CertificateError, match=r"^valid_days: "):
        ca.issue_with_new_key("sensor-1", valid_days=valid_days)


def test_device_certificate_never_outlives_the_ca() -> None:
    short = CertificateAuthority.create("Short-lived root", valid_days=10, clock=fixed_clock)
    issued, _ = short.issue_with_new_key("sensor-1", valid_days=365)
    assert issued.not_after == short.certificate.not_valid_after_utc


def test_ca_round_trips_through_pem_and_keeps_signing(ca: CertificateAuthority) -> None:
    loaded = CertificateAuthority.load(ca.certificate_pem, ca.private_key_pem, clock=fixed_clock)

    issued, _ = loaded.issue_with_new_key("sensor-3")
    verify_client_chain(ca, issued)
    assert loaded.certificate_pem == ca.certificate_pem


def test_load_refuses_a_key_that_does_not_belong_to_the_certificate(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create("Other root")
    with pytest.raises(CertificateError, match=r"^private_key_pem: does not belong"):
        CertificateAuthority.load(ca.certificate_pem, other.private_key_pem)


def test_load_refuses_a_certificate_that_is_not_a_ca(ca: CertificateAuthority) -> None:
    issued, key_pem = ca.issue_with_new_key("sensor-1")
    with pytest.raises(CertificateError, match=r"^certificate_pem: is not a CA certificate"):
        CertificateAuthority.load(issued.certificate_pem, key_pem)


def test_load_refuses_garbage_naming_the_field(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match=r"^certificate_pem: not a PEM X\.509 certificate"):
        CertificateAuthority.load("garbage", ca.private_key_pem)
    with pytest.raises(CertificateError, match=r"^private_key_pem: not an unencrypted PEM private key"):
        CertificateAuthority.load(ca.certificate_pem, "garbage")


def test_ca_certificate_is_a_self_signed_root_that_signs_only_end_entities(ca: CertificateAuthority) -> None:
    certificate = ca.certificate
    certificate.verify_directly_issued_by(certificate)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_server_certificate_is_valid_for_every_name_and_ip(ca: CertificateAuthority) -> None:
    issued, key_pem = ca.server_certificate(["localhost", "broker.example.com", "127.0.0.1", "::1"])

    certificate = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    for name in ("localhost", "broker.example.com"):
        verifier = (
            PolicyBuilder().store(Store([ca.certificate])).time(NOW).build_server_verifier(x509.DNSName(name))
        )
        verifier.verify(certificate, [])
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert issued.common_name == "localhost"
    assert (
        serialization.load_pem_private_key(key_pem.encode(), password=None).public_key()
        == certificate.public_key()
    )
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca.certificate])).time(NOW).build_server_verifier(
            x509.DNSName("other.example.com")
        ).verify(certificate, [])


@pytest.mark.parametrize(("names", "field"), [([], "names"), (["localhost", "not a host"], "names[1]")])
def test_server_certificate_refuses_bad_names(ca: CertificateAuthority, names: list[str], field: str) -> None:
    with pytest.raises(CertificateError) as caught:
        ca.server_certificate(names)
    assert caught.value.field == field


def test_verify_accepts_own_certificates_and_refuses_another_cas(ca: CertificateAuthority) -> None:
    issued, _ = ca.issue_with_new_key("sensor-1")
    assert ca.verify(issued.certificate_pem) == issued

    stranger, _ = CertificateAuthority.create("Edgewise Test Root", clock=fixed_clock).issue_with_new_key(
        "sensor-1"
    )
    with pytest.raises(CertificateError, match="was not issued by this certificate authority"):
        ca.verify(stranger.certificate_pem)


def test_verify_refuses_an_expired_certificate(ca: CertificateAuthority) -> None:
    issued, _ = ca.issue_with_new_key("sensor-1", valid_days=1)
    later = CertificateAuthority.load(
        ca.certificate_pem, ca.private_key_pem, clock=lambda: NOW + datetime.timedelta(days=2)
    )
    with pytest.raises(CertificateError, match=r"is valid from .* not at"):
        later.verify(issued.certificate_pem)


def test_crl_lists_revoked_and_held_serials_and_is_signed_by_the_ca(ca: CertificateAuthority) -> None:
    revoked, _ = ca.issue_with_new_key("sensor-revoked")
    held, _ = ca.issue_with_new_key("sensor-inactive")
    active, _ = ca.issue_with_new_key("sensor-active")

    crl = x509.load_pem_x509_crl(
        ca.build_crl([revoked.serial], held_serials=[held.serial, revoked.serial]).encode()
    )

    assert crl.is_signature_valid(ca_public_key(ca))
    assert crl.issuer == ca.certificate.subject
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > NOW + datetime.timedelta(days=300)

    def reason(serial: int) -> x509.ReasonFlags | None:
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        return (
            None if entry is None else entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        )

    assert reason(revoked.serial) is x509.ReasonFlags.unspecified
    assert reason(held.serial) is x509.ReasonFlags.certificate_hold
    assert reason(active.serial) is None
    assert len(crl) == 2


def test_empty_crl_is_valid(ca: CertificateAuthority) -> None:
    crl = x509.load_pem_x509_crl(ca.build_crl([]).encode())
    assert len(crl) == 0
    assert crl.is_signature_valid(ca_public_key(ca))


def test_crl_refuses_a_serial_that_is_not_positive(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match=r"^held_serials: -3 is not a certificate serial"):
        ca.build_crl([1], held_serials=[-3])
