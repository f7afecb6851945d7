"""Provisioning templates: the checks when a template is saved (every problem named by its path), the
intrinsic functions, Mappings, Conditions and built-in parameters when a device registers, OverrideSettings
against an existing thing, policies from documents, and the pre-provisioning hook on a real HTTP server.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, PermissionDeniedError
from edgewise.cloud.identity import CertificateAuthority, CertificateStatus
from edgewise.cloud.identity import service as identity
from edgewise.cloud.provisioning import registration, service
from edgewise.cloud.provisioning.hook import PreProvisioningHook
from edgewise.cloud.provisioning.models import OwnershipToken
from edgewise.cloud.provisioning.plan import ProvisioningPlan, certificate_parameters, plan_provisioning
from edgewise.cloud.provisioning.template import Override, TemplateError, parse_template
from edgewise.cloud.registry import service as registry
from tests.cloud.test_provisioning_service import DEVICE_POLICY

CERTIFICATE_ID = "c" * 64
BUILTINS = {"AWS::IoT::Certificate::Id": CERTIFICATE_ID, "AWS::IoT::Certificate::CommonName": "device-1a2b"}
CERTIFICATE = {
    "Type": "AWS::IoT::Certificate",
    "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
}


def body_with(thing: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A template of one thing with ``thing`` as its properties, the certificate, and ``sections``."""
    resources = {"thing": {"Type": "AWS::IoT::Thing", "Properties": thing}, "certificate": CERTIFICATE}
    resources.update(sections.pop("Resources", {}))
    return {"Resources": resources, **sections}


def parameters(*names: str, **defaults: str) -> dict[str, Any]:
    """A ``Parameters`` section declaring ``names`` and ``defaults`` (with their Default)."""
    declared: dict[str, Any] = {name: {"Type": "String"} for name in names}
    declared.update({name: {"Type": "String", "Default": value} for name, value in defaults.items()})
    return declared


# Evaluation


def test_every_intrinsic_function_evaluates_as_aws_documents_it() -> None:
    body = body_with(
        {
            "ThingName": {"Fn::Sub": "${Prefix}-${SerialNumber}"},
            "AttributePayload": {
                "model": {"Fn::Select": [1, {"Fn::Split": [":", {"Ref": "Hardware"}]}]},
                "revision": {"Fn::Select": ["2", {"Fn::Split": [":", {"Ref": "Hardware"}]}]},
                "url": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Url"]},
                "cn": {"Fn::Join": ["", ["cn-", {"Ref": "AWS::IoT::Certificate::CommonName"}]]},
            },
            "ThingGroups": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Groups"]},
        },
        Parameters=parameters("SerialNumber", "Hardware", Prefix="sensor", Site="berlin"),
        Mappings={"Sites": {"berlin": {"Url": "https://eu.example/v1", "Groups": ["eu", "fleet"]}}},
        DeviceConfiguration={
            "endpoint": {"Fn::Sub": ["${!Literal}/${Serial}", {"Serial": {"Ref": "SerialNumber"}}]},
            "certificate": {"Ref": "AWS::IoT::Certificate::Id"},
        },
    )

    plan = plan_provisioning(parse_template(body), {"SerialNumber": "0042", "Hardware": "pi:4b:r2"}, BUILTINS)

    assert plan.thing_name == "sensor-0042"
    assert plan.attributes == {
        "model": "4b",
        "revision": "r2",
        "url": "https://eu.example/v1",
        "cn": "cn-device-1a2b",
    }
    assert plan.groups == ["eu", "fleet"]
    assert plan.device_configuration == {"endpoint": "${Literal}/0042", "certificate": CERTIFICATE_ID}


@pytest.mark.parametrize(
    ("environment", "site", "groups", "policies"),
    [
        ("prod", "berlin", ["prod-eu"], ["device", "production"]),
        ("prod", "austin", ["prod"], ["device", "production"]),
        ("dev", "berlin", ["lab"], ["device"]),
        ("test", "berlin", ["lab"], ["device"]),
    ],
)
def test_conditions_choose_values_and_policies(
    environment: str, site: str, groups: list[str], policies: list[str]
) -> None:
    body = body_with(
        {
            "ThingName": {"Ref": "Serial"},
            "ThingGroups": [
                {"Fn::If": ["ProdInEurope", "prod-eu", {"Fn::If": ["Production", "prod", "lab"]}]}
            ],
            "ThingTypeName": {"Fn::If": ["Production", {"Ref": "AWS::NoValue"}, "bench"]},
        },
        Parameters=parameters("Serial", "Environment", "Site"),
        Conditions={
            "Production": {"Fn::Equals": [{"Ref": "Environment"}, "prod"]},
            "InEurope": {
                "Fn::Or": [
                    {"Fn::Equals": [{"Ref": "Site"}, "berlin"]},
                    {"Fn::Equals": ["paris", {"Ref": "Site"}]},
                ]
            },
            "ProdInEurope": {"Fn::And": [{"Condition": "Production"}, {"Condition": "InEurope"}]},
            "NotProduction": {"Fn::Not": [{"Condition": "Production"}]},
        },
        Resources={
            "device": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device"}},
            "production": {
                "Type": "AWS::IoT::Policy",
                "Condition": "Production",
                "Properties": {"PolicyName": "production"},
            },
        },
    )

    plan = plan_provisioning(
        parse_template(body), {"Serial": "s1", "Environment": environment, "Site": site}, BUILTINS
    )

    assert plan.groups == groups
    assert [policy.name for policy in plan.policies] == policies
    assert plan.thing_type_name == (None if environment == "prod" else "bench")


def test_no_value_leaves_out_attributes_and_configuration() -> None:
    body = body_with(
        {
            "ThingName": "pump",
            "AttributePayload": {
                "kept": "yes",
                "dropped": {"Fn::If": ["Never", "no", {"Ref": "AWS::NoValue"}]},
            },
        },
        Conditions={"Never": {"Fn::Equals": ["a", "b"]}},
        DeviceConfiguration={"gone": {"Ref": "AWS::NoValue"}, "here": "x"},
    )
    plan = plan_provisioning(parse_template(body), {}, BUILTINS)
    assert plan.attributes == {"kept": "yes"}
    assert plan.device_configuration == {"here": "x"}


def test_the_aws_documentation_example_works() -> None:
    """The fleet provisioning example of AWS's provision-template page (with a ThingName, no BillingGroup)."""
    body = {
        "Parameters": {"SerialNumber": {"Type": "String"}, "DeviceLocation": {"Type": "String"}},
        "Mappings": {"LocationTable": {"Seattle": {"LocationUrl": "https://example.aws"}}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "SerialNumber"},
                    "AttributePayload": {"version": "v1", "serialNumber": "serialNumber"},
                    "ThingTypeName": {"Fn::Join": ["", ["ThingPrefix_", {"Ref": "SerialNumber"}]]},
                    "ThingGroups": ["v1-lightbulbs", "WA"],
                },
                "OverrideSettings": {
                    "AttributePayload": "MERGE",
                    "ThingTypeName": "REPLACE",
                    "ThingGroups": "DO_NOTHING",
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"},
            },
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["iot:Publish"],
                                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo/bar"],
                            }
                        ],
                    }
                },
            },
        },
        "DeviceConfiguration": {
            "FallbackUrl": "https://www.example.com/test-site",
            "LocationUrl": {"Fn::FindInMap": ["LocationTable", {"Ref": "DeviceLocation"}, "LocationUrl"]},
        },
    }

    plan = plan_provisioning(
        parse_template(body), {"SerialNumber": "bulb7", "DeviceLocation": "Seattle"}, BUILTINS
    )

    assert (plan.thing_name, plan.thing_type_name, plan.groups) == (
        "bulb7",
        "ThingPrefix_bulb7",
        ["v1-lightbulbs", "WA"],
    )
    assert plan.overrides["ThingGroups"] is Override.DO_NOTHING
    assert plan.certificate_status is CertificateStatus.ACTIVE
    assert plan.policies[0].document is not None
    assert plan.policies[0].document["Statement"][0]["Action"] == ["iot:Publish"]
    assert plan.device_configuration["LocationUrl"] == "https://example.aws"


def test_policy_document_as_json_text_is_read() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
    }
    body = body_with(
        {"ThingName": "t"},
        Resources={
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": json.dumps(document)}}
        },
    )
    assert plan_provisioning(parse_template(body), {}, BUILTINS).policies[0].document == document


def _certificate_pem(subject: x509.Name) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_builtin_parameters_come_from_the_certificate_subject() -> None:
    pem = _certificate_pem(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "device-77"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, "SN-9"),
            ]
        )
    )
    builtins = certificate_parameters(CERTIFICATE_ID, pem)
    assert builtins == {
        "AWS::IoT::Certificate::Id": CERTIFICATE_ID,
        "AWS::IoT::Certificate::CommonName": "device-77",
        "AWS::IoT::Certificate::Country": "DE",
        "AWS::IoT::Certificate::SerialNumber": "SN-9",
    }
    body = body_with(
        {
            "ThingName": {"Ref": "AWS::IoT::Certificate::SerialNumber"},
            "AttributePayload": {
                "country": {"Ref": "AWS::IoT::Certificate::Country"},
                "org": {"Ref": "AWS::IoT::Certificate::Organization"},
            },
        },
        Parameters={"AWS::IoT::Certificate::Organization": {"Type": "String", "Default": "none"}},
    )
    plan = plan_provisioning(parse_template(body), {}, builtins)
    assert (plan.thing_name, plan.attributes) == ("SN-9", {"country": "DE", "org": "none"})


def test_a_builtin_the_certificate_lacks_is_refused_naming_it() -> None:
    body = body_with({"ThingName": {"Ref": "AWS::IoT::Certificate::Country"}})
    with pytest.raises(InvalidRequestError) as refused:
        plan_provisioning(parse_template(body), {}, BUILTINS)
    assert refused.value.field == "parameters.AWS::IoT::Certificate::Country"


@pytest.mark.parametrize(
    ("given", "field", "problem"),
    [
        ({}, "parameters.Serial", "is required"),
        ({"Serial": 42}, "parameters.Serial", "must be a string, not int"),
        ({"Serial": "1", "Colour": "red"}, "parameters.Colour", "not a parameter of the template"),
        (
            {"Serial": "1", "AWS::IoT::Certificate::Id": "f" * 64},
            "parameters.AWS::IoT::Certificate::Id",
            "set from the device's certificate",
        ),
        ({"Serial": "a/b"}, "Resources.thing.Properties.ThingName", "must be 1-128 characters"),
        (
            {"Serial": "1", "Index": "7"},
            "Resources.thing.Properties.AttributePayload.slot.Fn::Select[0]",
            "out of range",
        ),
        (
            {"Serial": "1", "Index": "-1"},
            "Resources.thing.Properties.AttributePayload.slot.Fn::Select[0]",
            "not a non-negative",
        ),
        (
            {"Serial": "1", "Site": "mars"},
            "Resources.thing.Properties.AttributePayload.url.Fn::FindInMap",
            "no key 'mars'",
        ),
    ],
)
def test_device_parameters_that_do_not_fit_are_refused_naming_them(
    given: dict[str, Any], field: str, problem: str
) -> None:
    body = body_with(
        {
            "ThingName": {"Ref": "Serial"},
            "AttributePayload": {
                "slot": {"Fn::Select": [{"Ref": "Index"}, ["a", "b"]]},
                "url": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Url"]},
            },
        },
        Parameters=parameters("Serial", Index="0", Site="berlin"),
        Mappings={"Sites": {"berlin": {"Url": "u"}}},
    )
    with pytest.raises(InvalidRequestError) as refused:
        plan_provisioning(parse_template(body, path=""), given, BUILTINS)
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_a_result_too_long_is_refused() -> None:
    body = body_with(
        {
            "ThingName": "t",
            "AttributePayload": {"x": {"Fn::Join": [{"Ref": "D"}, {"Fn::Split": [",", {"Ref": "L"}]}]}},
        },
        Parameters=parameters("D", "L"),
    )
    with pytest.raises(InvalidRequestError, match="at most 65536"):
        plan_provisioning(parse_template(body), {"D": "x" * 1000, "L": "," * 1000}, BUILTINS)


# Checks when saved


def test_every_problem_of_a_template_is_named_by_its_path() -> None:
    body = body_with(
        {
            "ThingName": {"Fn::Join": ["-"]},
            "AttributePayload": {"a": {"Ref": "Nope"}, "b": {"Fn::GetAtt": ["x", "y"]}, "c": 5},
            "ThingGroups": {"Ref": "Serial"},
            "BillingGroup": "bills",
        },
        Parameters=parameters("Serial"),
        Conditions={"Loop": {"Fn::Not": [{"Condition": "Loop"}]}, "Odd": {"Ref": "Serial"}},
        Mappings={"M": {"k": {"v": {"Ref": "Serial"}}}},
    )
    body["Resources"]["thing"]["OverrideSettings"] = {"ThingTypeName": "MERGE", "Colour": "REPLACE"}
    body["Resources"]["thing"]["Condition"] = "Loop"
    body["Resources"]["extra"] = {
        "Type": "AWS::IoT::Policy",
        "Properties": {"PolicyName": "a", "PolicyDocument": {}},
    }

    with pytest.raises(TemplateError) as refused:
        parse_template(body, path="")

    found = {(problem.path, problem.problem) for problem in refused.value.problems}
    thing = "Resources.thing.Properties"
    assert f"{thing}.ThingName: Fn::Join expects [delimiter, [values]]" in str(refused.value)
    paths = {path for path, _ in found}
    assert paths >= {
        f"{thing}.ThingName",
        f"{thing}.AttributePayload.a",
        f"{thing}.AttributePayload.b",
        f"{thing}.AttributePayload.c",
        f"{thing}.ThingGroups",
        f"{thing}.BillingGroup",
        "Conditions.Loop",
        "Conditions.Odd",
        "Mappings.M.k.v",
        "Resources.thing.OverrideSettings.ThingTypeName",
        "Resources.thing.OverrideSettings.Colour",
        "Resources.thing.Condition",
        "Resources.extra.Properties",
    }
    for path, _ in found:
        assert path in str(refused.value) or path == refused.value.field


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        ({"ThingName": {"Fn::Select": [0]}}, "ThingName", "Fn::Select expects [index, [values]]"),
        ({"ThingName": {"Fn::Split": ["", "a"]}}, "ThingName.Fn::Split[0]", "delimiter cannot be empty"),
        ({"ThingName": {"Fn::Sub": "${Missing}"}}, "ThingName", "${Missing} is neither"),
        ({"ThingName": {"Fn::FindInMap": ["Nope", "a", "b"]}}, "ThingName.Fn::FindInMap[0]", "not a map"),
        ({"ThingName": {"Fn::If": ["NoSuch", "a", "b"]}}, "ThingName.Fn::If[0]", "not a condition"),
        ({"ThingName": {"Fn::Equals": ["a", "b"]}}, "ThingName", "only be used in Conditions"),
        ({"ThingName": {"Ref": "AWS::NoValue"}}, "ThingName", "is required"),
        ({"ThingName": ["a"]}, "ThingName", "must be a string, not a list"),
        ({"ThingName": {"Ref": "x", "Fn::Join": []}}, "ThingName.Ref", "only key of its object"),
        ({"ThingGroups": "fleet"}, "ThingGroups", "must be a list, not a string"),
        ({"ThingGroups": [["nested"]]}, "ThingGroups[0]", "must be a string, not a list"),
        ({"AttributePayload": ["a"]}, "AttributePayload", "must be an object, not a list"),
    ],
)
def test_bad_function_uses_are_refused_at_their_path(change: dict[str, Any], path: str, problem: str) -> None:
    body = body_with({"ThingName": "t", **change})
    with pytest.raises(TemplateError) as refused:
        parse_template(body)
    assert any(
        found.path == f"templateBody.Resources.thing.Properties.{path}" and problem in found.problem
        for found in refused.value.problems
    ), refused.value.problems


@pytest.mark.parametrize(
    ("body", "path", "problem"),
    [
        (
            {"Resources": {"certificate": CERTIFICATE}},
            "templateBody.Resources",
            "exactly one AWS::IoT::Thing",
        ),
        ("not an object", "templateBody", "must be an object"),
        (body_with({"ThingName": "t"}, Outputs={}), "templateBody", "unsupported sections ['Outputs']"),
        (
            body_with({"ThingName": "t"}, Parameters={"P": {"Type": "Number"}}),
            "templateBody.Parameters.P",
            "String",
        ),
        (
            body_with({"ThingName": "t"}, Parameters={"P": {"Type": "String", "Default": 1}}),
            "templateBody.Parameters.P.Default",
            "must be a string",
        ),
        (
            body_with(
                {"ThingName": "t"},
                Conditions={"A": {"Condition": "B"}, "B": {"Fn::Not": [{"Condition": "A"}]}},
            ),
            "templateBody.Conditions.A",
            "depends on itself",
        ),
        (
            body_with({"ThingName": "t"}, Conditions={"A": {"Fn::And": [{"Condition": "A"}]}}),
            "templateBody.Conditions.A.Fn::And",
            "2 to 10 conditions",
        ),
    ],
)
def test_bad_sections_are_refused_at_their_path(body: Any, path: str, problem: str) -> None:
    with pytest.raises(TemplateError) as refused:
        parse_template(body)
    assert any(found.path == path and problem in found.problem for found in refused.value.problems), (
        refused.value.problems
    )


def test_certificate_and_policy_resources_are_checked() -> None:
    body = body_with({"ThingName": "t"})
    body["Resources"]["certificate"] = {
        "Type": "AWS::IoT::Certificate",
        "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "PENDING"},
        "OverrideSettings": {"Status": "MERGE"},
    }
    body["Resources"]["policy"] = {
        "Type": "AWS::IoT::Policy",
        "Properties": {"PolicyDocument": "{not json"},
        "OverrideSettings": {},
    }
    with pytest.raises(TemplateError) as refused:
        parse_template(body, path="")
    paths = {problem.path for problem in refused.value.problems}
    assert paths == {
        "Resources.certificate.Properties.CertificateSigningRequest",
        "Resources.certificate.Properties.CertificateId",
        "Resources.certificate.Properties.Status",
        "Resources.certificate.OverrideSettings.Status",
        "Resources.policy.Properties.PolicyDocument",
        "Resources.policy.OverrideSettings",
    }


def test_override_settings_accept_both_aws_spellings() -> None:
    body = body_with({"ThingName": "t"})
    body["Resources"]["thing"]["OverrideSettings"] = {"ATTRIBUTE_PAYLOAD": "REPLACE", "ThingGroups": "FAIL"}
    plan = plan_provisioning(parse_template(body), {}, BUILTINS)
    assert plan.overrides == {
        "AttributePayload": Override.REPLACE,
        "ThingTypeName": Override.REPLACE,
        "ThingGroups": Override.FAIL,
    }


# Fuzzing: nothing but the defined errors, whatever the template and parameters


_KEYS = st.sampled_from(
    [
        "Parameters",
        "Mappings",
        "Conditions",
        "Resources",
        "DeviceConfiguration",
        "Type",
        "Properties",
        "OverrideSettings",
        "Condition",
        "ThingName",
        "AttributePayload",
        "ThingGroups",
        "ThingTypeName",
        "CertificateId",
        "Status",
        "PolicyName",
        "PolicyDocument",
        "Ref",
        "Fn::Join",
        "Fn::Select",
        "Fn::Split",
        "Fn::Sub",
        "Fn::FindInMap",
        "Fn::If",
        "Fn::Equals",
        "Fn::Not",
        "Fn::And",
        "Fn::Or",
        "Default",
        "P",
        "M",
        "C",
        "thing",
        "certificate",
    ]
) | st.text(max_size=4)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 5)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "String",
            "AWS::IoT::Thing",
            "AWS::IoT::Certificate",
            "AWS::IoT::Policy",
            "AWS::IoT::Certificate::Id",
            "AWS::NoValue",
            "P",
            "C",
            "M",
            "ACTIVE",
            "MERGE",
            "${P}",
            ",",
            "",
        ]
    )
    | st.text(max_size=6)
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=40,
)
_STRINGS = st.sampled_from([",", "-", "a,b,c", "a", "b", "c", "0", "1", "${P}", "${!P}", "x"]) | st.text(
    max_size=5
)
_LEAVES = _STRINGS | st.sampled_from(
    ["P", "Q", "AWS::NoValue", "AWS::IoT::Certificate::Id", "AWS::IoT::Certificate::Country"]
).map(lambda name: {"Ref": name})


def _functions(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Well-formed calls of every value function, whose arguments may still not fit at run time."""
    ref_p = st.just({"Ref": "P"})
    splits = st.tuples(st.sampled_from([",", "-"]) | ref_p, inner).map(lambda a: {"Fn::Split": list(a)})
    values = st.lists(inner, max_size=3) | splits
    return st.one_of(
        st.tuples(inner, values).map(lambda a: {"Fn::Join": list(a)}),
        st.tuples(st.sampled_from([0, 1, 2, "1"]) | ref_p, values).map(lambda a: {"Fn::Select": list(a)}),
        splits,
        st.sampled_from(["${P}-${Q}", "${!P}", "${AWS::IoT::Certificate::Id}"]).map(lambda t: {"Fn::Sub": t}),
        st.tuples(st.sampled_from(["${V}", "${V}${P}"]), inner).map(
            lambda a: {"Fn::Sub": [a[0], {"V": a[1]}]}
        ),
        st.tuples(st.sampled_from(["a", "b"]) | ref_p, st.sampled_from(["b", "c"]) | inner).map(
            lambda a: {"Fn::FindInMap": ["M", *a]}
        ),
        st.tuples(inner, inner).map(lambda a: {"Fn::If": ["C", *a]}),
    )


_EXPRESSIONS = st.recursive(_LEAVES, _functions, max_leaves=8)
_PARAMETERS = st.fixed_dictionaries(
    {"P": st.sampled_from(["a", "b", "x-y", "1"]) | st.integers()},
    optional={
        "Q": _STRINGS,
        "R": st.just("r"),
        "AWS::IoT::Certificate::Id": st.just("f"),
    },
)


def _skeleton(
    name: Any, attribute: Any, groups: Any, condition: Any, resource: Any, configuration: Any
) -> Any:
    return {
        "Parameters": {"P": {"Type": "String"}, "Q": {"Type": "String", "Default": "a,b"}},
        "Mappings": {"M": {"a": {"b": "v", "c": ["l1", "l2"]}, "b": {"b": "w", "c": "l3"}}},
        "Conditions": {"C": {"Fn::Equals": [{"Ref": "P"}, condition]}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": name,
                    "AttributePayload": {"k": attribute},
                    "ThingGroups": [groups],
                },
            },
            "certificate": CERTIFICATE,
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": resource}],
                    }
                },
            },
        },
        "DeviceConfiguration": {"d": configuration},
    }


def _plan_or_defined_error(body: Any, given: Any) -> ProvisioningPlan | InvalidRequestError:
    try:
        return plan_provisioning(parse_template(body), given, BUILTINS)
    except InvalidRequestError as refused:  # TemplateError too
        return refused


def _check_outcome(outcome: ProvisioningPlan | InvalidRequestError) -> None:
    if isinstance(outcome, TemplateError):
        assert outcome.problems
        assert all(problem.path.startswith("templateBody") for problem in outcome.problems)
    elif isinstance(outcome, InvalidRequestError):
        assert outcome.field
    else:
        assert isinstance(outcome.thing_name, str)
        assert all(isinstance(value, str) for value in outcome.device_configuration.values())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_JSON, given_parameters=_PARAMETERS)
def test_fuzzed_bodies_fail_only_with_template_errors(body: Any, given_parameters: Any) -> None:
    _check_outcome(_plan_or_defined_error(body, given_parameters))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    expressions=st.tuples(_EXPRESSIONS, _EXPRESSIONS, _EXPRESSIONS, _STRINGS, _EXPRESSIONS, _EXPRESSIONS),
    given_parameters=_PARAMETERS,
)
def test_fuzzed_functions_evaluate_or_fail_with_invalid_parameters(
    expressions: tuple[Any, ...], given_parameters: Any
) -> None:
    _check_outcome(_plan_or_defined_error(_skeleton(*expressions), given_parameters))


# In the store: OverrideSettings, policies from documents, the hook


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create("Test CA")


@pytest.fixture
def store(session: Session) -> Session:
    """A store with policy ``device``, groups ``fleet``, ``lab`` and ``prod``, and thing ``pump-1``
    (type ``old``, attribute ``owner``, in group ``lab``)."""
    identity.create_policy(session, "device", DEVICE_POLICY)
    for group in ("fleet", "lab", "prod"):
        registry.create_group(session, group)
    registry.create_thing(session, "pump-1", thing_type_name="old", attributes={"owner": "ops"})
    registry.add_thing_to_group(session, "lab", "pump-1")
    return session


def pump_template(overrides: dict[str, str] | None = None, **policies: Any) -> dict[str, Any]:
    """Thing ``pump-<Serial>`` with attribute site, type new, group fleet, and policy ``device``."""
    body = body_with(
        {
            "ThingName": {"Fn::Join": ["-", ["pump", {"Ref": "Serial"}]]},
            "AttributePayload": {"site": {"Ref": "Site"}},
            "ThingTypeName": "new",
            "ThingGroups": ["fleet"],
        },
        Parameters=parameters("Serial", Site="berlin"),
        Resources={
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device"}},
            **policies,
        },
    )
    if overrides is not None:
        body["Resources"]["thing"]["OverrideSettings"] = overrides
    return body


def register(
    session: Session,
    authority: CertificateAuthority,
    template: str,
    given: dict[str, Any],
    **options: Any,
) -> tuple[service.ClaimedCertificate, registration.RegisteredThing]:
    claimed = service.create_claimed_certificate(session, authority)
    return claimed, registration.register_thing(session, template, claimed.ownership_token, given, **options)


def thing_state(session: Session, name: str) -> tuple[dict[str, str], str | None, list[str]]:
    thing = registry.get_thing(session, name)
    groups = [found.group.name for found in registry.list_thing_groups(session, name) if found.direct]
    return thing.attributes, thing.thing_type_name, groups


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("DO_NOTHING", ({"owner": "ops"}, "old", ["lab"])),
        ("REPLACE", ({"site": "berlin"}, "new", ["fleet"])),
        ("MERGE", ({"owner": "ops", "site": "berlin"}, "new", ["fleet", "lab"])),
    ],
)
def test_override_settings_decide_what_happens_to_an_existing_thing(
    store: Session, authority: CertificateAuthority, override: str, expected: Any
) -> None:
    overrides = {"AttributePayload": override, "ThingGroups": override}
    overrides["ThingTypeName"] = "REPLACE" if override == "MERGE" else override
    service.create_template(store, "pumps", pump_template(overrides))

    claimed, registered = register(store, authority, "pumps", {"Serial": "1"})

    assert registered.thing_name == "pump-1"
    assert thing_state(store, "pump-1") == expected
    assert [c.certificate_id for c in identity.list_thing_principals(store, "pump-1")] == [
        claimed.certificate.certificate_id
    ]


def test_without_override_settings_an_existing_thing_is_merged_and_retyped(
    store: Session, authority: CertificateAuthority
) -> None:
    service.create_template(store, "pumps", pump_template())
    register(store, authority, "pumps", {"Serial": "1"})
    assert thing_state(store, "pump-1") == ({"owner": "ops", "site": "berlin"}, "new", ["fleet", "lab"])


def test_override_fail_refuses_an_existing_thing_and_keeps_the_token(
    store: Session, authority: CertificateAuthority
) -> None:
    service.create_template(store, "pumps", pump_template({"ThingGroups": "FAIL"}))
    claimed = service.create_claimed_certificate(store, authority)

    with pytest.raises(CloudConflictError, match="FAIL for ThingGroups"):
        registration.register_thing(store, "pumps", claimed.ownership_token, {"Serial": "1"})

    assert thing_state(store, "pump-1") == ({"owner": "ops"}, "old", ["lab"])
    assert store.get(OwnershipToken, service.token_hash(claimed.ownership_token)) is not None
    registered = registration.register_thing(store, "pumps", claimed.ownership_token, {"Serial": "2"})
    assert thing_state(store, registered.thing_name) == ({"site": "berlin"}, "new", ["fleet"])


def test_a_policy_document_becomes_one_policy_per_distinct_document(
    store: Session, authority: CertificateAuthority
) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": {"Fn::Sub": "arn:aws:iot:*:*:topic/dt/${Site}/*"},
            }
        ],
    }
    service.create_template(
        store,
        "pumps",
        pump_template(own={"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}}),
    )

    first, _ = register(store, authority, "pumps", {"Serial": "7"})
    second, _ = register(store, authority, "pumps", {"Serial": "8"})
    third, _ = register(store, authority, "pumps", {"Serial": "9", "Site": "paris"})

    made = {policy.name for policy in identity.list_policies(store).items} - {"device"}
    assert len(made) == 2
    targets = {name: identity.list_policy_targets(store, name).certificate_ids for name in made}
    assert sorted(map(sorted, targets.values())) == sorted(
        [
            sorted([first.certificate.certificate_id, second.certificate.certificate_id]),
            [third.certificate.certificate_id],
        ]
    )


def test_a_literal_policy_document_is_checked_when_saved(store: Session) -> None:
    bad = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": {"Statement": "nope"}}}
    with pytest.raises(TemplateError) as refused:
        service.create_template(store, "pumps", pump_template(bad=bad))
    assert refused.value.field == "templateBody.Resources.bad.Properties.PolicyDocument"


# The pre-provisioning hook, on a real HTTP server


class HookServer:
    """A local HTTP endpoint for pre-provisioning hooks; it answers ``status`` and ``reply`` (bytes or JSON),
    or holds each request until :meth:`close` when ``hold`` is set."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.reply: Any = {"allowProvisioning": True}
        self.hold = False
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.requests.append(json.loads(self.rfile.read(length)))
                if server.hold:
                    server._released.wait()
                body = server.reply if isinstance(server.reply, bytes) else json.dumps(server.reply).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="hook-server"
        )
        self._thread.start()

    def close(self) -> None:
        self._released.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def hooked(store: Session, hook_server: HookServer) -> Session:
    """``store`` with template ``pumps`` whose hook is ``hook_server``."""
    service.create_template(store, "pumps", pump_template(), hook=PreProvisioningHook(hook_server.url))
    return store


def test_hook_receives_the_aws_input_and_its_overrides_apply(
    hooked: Session, authority: CertificateAuthority, hook_server: HookServer
) -> None:
    hook_server.reply = {"allowProvisioning": True, "parameterOverrides": {"Site": "paris"}}

    claimed, registered = register(hooked, authority, "pumps", {"Serial": "5"})

    assert registry.get_thing(hooked, registered.thing_name).attributes == {"site": "paris"}
    assert hook_server.requests == [
        {
            "claimCertificateId": None,
            "certificateId": claimed.certificate.certificate_id,
            "certificatePem": claimed.certificate.pem,
            "templateArn": "arn:aws:iot:edgewise:000000000000:provisioningtemplate/pumps",
            "clientId": None,
            "parameters": {"Serial": "5"},
        }
    ]


@pytest.mark.parametrize(
    ("status", "reply", "reason"),
    [
        (200, {"allowProvisioning": False}, "did not allow provisioning"),
        (200, {"parameterOverrides": {}}, "did not allow provisioning"),
        (500, {"allowProvisioning": True}, "answered HTTP 500"),
        (200, b"<html>", "not JSON"),
        (200, [True], "not an object"),
        (200, {"allowProvisioning": True, "parameterOverrides": ["Site"]}, "parameterOverrides"),
    ],
)
def test_hook_that_says_no_or_fails_refuses_the_device_and_leaves_nothing(
    hooked: Session,
    authority: CertificateAuthority,
    hook_server: HookServer,
    status: int,
    reply: Any,
    reason: str,
) -> None:
    hook_server.status, hook_server.reply = status, reply
    claimed = service.create_claimed_certificate(hooked, authority)

    with pytest.raises(PermissionDeniedError, match=reason):
        registration.register_thing(hooked, "pumps", claimed.ownership_token, {"Serial": "5"})

    assert registry.list_things(hooked).total == 1
    assert hooked.get(OwnershipToken, service.token_hash(claimed.ownership_token)) is not None


def test_a_slow_hook_is_a_refusal(
    hooked: Session, authority: CertificateAuthority, hook_server: HookServer
) -> None:
    hook_server.hold = True
    claimed = service.create_claimed_certificate(hooked, authority)
    with pytest.raises(PermissionDeniedError, match=r"did not answer within 0\.2 s"):
        registration.register_thing(
            hooked, "pumps", claimed.ownership_token, {"Serial": "5"}, hook_timeout=0.2
        )
    assert registry.list_things(hooked).total == 1


def test_an_unreachable_hook_is_a_refusal(store: Session, authority: CertificateAuthority) -> None:
    server = HookServer()
    server.close()  # the port is now closed
    service.create_template(store, "pumps", pump_template(), hook=PreProvisioningHook(server.url))
    claimed = service.create_claimed_certificate(store, authority)
    with pytest.raises(PermissionDeniedError, match="could not be reached"):
        registration.register_thing(store, "pumps", claimed.ownership_token, {"Serial": "5"})


def test_hook_overrides_follow_the_parameter_rules(
    hooked: Session, authority: CertificateAuthority, hook_server: HookServer
) -> None:
    hook_server.reply = {"allowProvisioning": True, "parameterOverrides": {"Colour": "red"}}
    claimed = service.create_claimed_certificate(hooked, authority)
    with pytest.raises(InvalidRequestError) as refused:
        registration.register_thing(hooked, "pumps", claimed.ownership_token, {"Serial": "5"})
    assert refused.value.field == "parameterOverrides.Colour"


@pytest.mark.parametrize(
    ("hook", "field"),
    [
        (PreProvisioningHook("ftp://example.com/hook"), "preProvisioningHook.targetUrl"),
        (PreProvisioningHook("http:///no-host"), "preProvisioningHook.targetUrl"),
        (PreProvisioningHook("https://example.com", "2019-01-01"), "preProvisioningHook.payloadVersion"),
    ],
)
def test_a_bad_hook_is_refused_when_saved(store: Session, hook: PreProvisioningHook, field: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        service.create_template(store, "pumps", pump_template(), hook=hook)
    assert refused.value.field == field
    with pytest.raises(InvalidRequestError, match="removePreProvisioningHook"):
        service.update_template(
            store, "pumps", hook=PreProvisioningHook("https://a.example"), remove_hook=True
        )


async def test_hook_over_the_api(admin_api: httpx.AsyncClient) -> None:
    await admin_api.post("/api/v1/policies", json={"policyName": "device", "policyDocument": DEVICE_POLICY})
    await admin_api.post("/api/v1/thing-groups", json={"thingGroupName": "fleet"})
    hook = {"targetUrl": "https://hooks.example/provision", "payloadVersion": "2020-04-01"}
    created = await admin_api.post(
        "/api/v1/provisioning-templates",
        json={"templateName": "pumps", "templateBody": pump_template(), "preProvisioningHook": hook},
    )
    assert created.status_code == 201, created.text
    assert created.json()["preProvisioningHook"] == hook

    removed = await admin_api.patch(
        "/api/v1/provisioning-templates/pumps", json={"removePreProvisioningHook": True}
    )
    assert removed.json()["preProvisioningHook"] is None

    bad = await admin_api.patch(
        "/api/v1/provisioning-templates/pumps",
        json={"preProvisioningHook": {"targetUrl": "http:///x"}},
    )
    assert bad.status_code == 422
    assert "preProvisioningHook.targetUrl" in bad.json()["message"]
