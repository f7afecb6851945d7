"""AWS IoT policies: validate documents, decide requests, and render one thing's permissions for a broker.

Documents follow AWS IoT (``Version`` 2012-10-17, ``Statement`` of ``Effect``/``Action``/``Resource``).
Edgewise decides the four MQTT actions ``iot:Connect``, ``iot:Publish``, ``iot:Subscribe`` and
``iot:Receive``; the other AWS IoT actions are accepted so that existing documents load, and nothing
consults them. ``Condition``, ``NotAction`` and ``NotResource`` are refused rather than ignored, because
ignoring them would grant more than the author meant.

Matching follows AWS: a request is allowed when some Allow statement matches and no Deny statement does.
Resources are ARNs ``arn:aws:iot:<region>:<account>:<type>/<name>`` (or ``*``); one Edgewise cloud is one
account in one region, so region and account are not compared. In the resource, ``*`` matches any run of
characters (``/`` included) and ``?`` exactly one; MQTT's ``+`` and ``#`` are ordinary characters, so
subscribing to the filter ``a/+`` is checked against ``topicfilter/a/+``. A policy variable that has no
value (no thing attached, attribute missing) makes its resource match nothing.

:func:`render_for_thing` turns the policies of one thing into MQTT topic filters for a broker's ACLs. Policy
globs are richer than MQTT filters, so the rendering is conservative: an Allow is narrowed to filters that
grant nothing the policy does not (or left out), and a Deny is widened to filters that deny at least what
the policy does. Every narrowing is listed in :attr:`ThingPermissions.narrowed`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from edgewise import topics
from edgewise.cloud.identity.errors import PolicyError, PolicyProblem

POLICY_VERSION: Final = "2012-10-17"
#: AWS IoT's limit on a policy document, counted without whitespace.
MAX_DOCUMENT_CHARACTERS: Final = 2048
DEFAULT_DEVICE_POLICY_NAME: Final = "EdgewiseDefaultDevicePolicy"


class Effect(enum.StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class Action(enum.StrEnum):
    """The actions Edgewise decides, each checked against one type of resource."""

    #: CONNECT, on ``client/<client id>``.
    CONNECT = "iot:Connect"
    #: PUBLISH from the device, on ``topic/<topic>``.
    PUBLISH = "iot:Publish"
    #: SUBSCRIBE, on ``topicfilter/<filter>`` (the filter as written, wildcards literal).
    SUBSCRIBE = "iot:Subscribe"
    #: Delivery of a message to the device, on ``topic/<topic>``.
    RECEIVE = "iot:Receive"

    @property
    def resource_type(self) -> str:
        return _RESOURCE_TYPES[self]


_RESOURCE_TYPES = {
    Action.CONNECT: "client",
    Action.PUBLISH: "topic",
    Action.SUBSCRIBE: "topicfilter",
    Action.RECEIVE: "topic",
}
_ALL_ACTIONS = ("iot:*", "*")
_OTHER_AWS_ACTIONS = (
    "iot:RetainPublish",
    "iot:GetRetainedMessage",
    "iot:ListRetainedMessages",
    "iot:GetThingShadow",
    "iot:UpdateThingShadow",
    "iot:DeleteThingShadow",
    "iot:ListNamedShadowsForThing",
    "iot:DescribeJobExecution",
    "iot:GetPendingJobExecutions",
    "iot:StartNextPendingJobExecution",
    "iot:UpdateJobExecution",
    "iot:AssumeRoleWithCertificate",
)
# IAM compares action names without regard to case; documents keep AWS's spelling after parsing.
_CANONICAL_ACTIONS = {
    name.lower(): name for name in (*(a.value for a in Action), *_ALL_ACTIONS, *_OTHER_AWS_ACTIONS)
}
_RESOURCE_TYPE_NAMES = frozenset(
    {"client", "topic", "topicfilter", "thing", "thinggroup", "cert", "cacert", "policy", "rolealias", "job"}
)
_PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov"})
_STATEMENT_KEYS = ("Sid", "Effect", "Action", "Resource")
_ATTRIBUTE_VARIABLE = re.compile(r"iot:Connection\.Thing\.Attributes\[([A-Za-z0-9_.,@/:#-]+)\]")
_CLIENT_ID = "iot:ClientId"
_THING_NAME = "iot:Connection.Thing.ThingName"
_THING_TYPE_NAME = "iot:Connection.Thing.ThingTypeName"
SUPPORTED_VARIABLES: Final = (
    _CLIENT_ID,
    _THING_NAME,
    _THING_TYPE_NAME,
    "iot:Connection.Thing.Attributes[<name>]",
)


class _Wildcard(enum.Enum):
    STAR = "*"
    ONE = "?"


@dataclass(frozen=True)
class _Variable:
    name: str


# A resource template is literal text, wildcards and variables; once variables are substituted it becomes
# a pattern of single characters and wildcards, so substituted text can never act as a wildcard.
_TemplatePart = str | _Wildcard | _Variable
_Atom = str | _Wildcard
_Pattern = tuple[_Atom, ...]


@dataclass(frozen=True)
class RequestContext:
    """What a request is decided against: who is connected, as policy variables see them."""

    client_id: str
    thing_name: str | None = None
    thing_type_name: str | None = None
    thing_attributes: Mapping[str, str] = field(default_factory=dict)

    def variable(self, name: str) -> str | None:
        """The value of policy variable ``name`` (without ``${}``), or None when it has none."""
        if name == _CLIENT_ID:
            return self.client_id
        if name == _THING_NAME:
            return self.thing_name
        if name == _THING_TYPE_NAME:
            return self.thing_type_name
        attribute = _ATTRIBUTE_VARIABLE.fullmatch(name)
        if attribute and self.thing_name is not None:
            return self.thing_attributes.get(attribute.group(1))
        return None


@dataclass(frozen=True)
class Resource:
    """One resource of a statement: ``text`` as written, and the template matched against
    ``<type>/<name>`` (region and account are not compared)."""

    text: str
    template: tuple[_TemplatePart, ...] = field(repr=False, compare=False)

    def pattern(self, context: RequestContext) -> _Pattern | None:
        """The template with ``context``'s variables substituted; None if a variable has no value."""
        atoms: list[_Atom] = []
        for part in self.template:
            if isinstance(part, _Variable):
                value = context.variable(part.name)
                if value is None:
                    return None
                atoms.extend(value)
            elif isinstance(part, _Wildcard):
                if not (part is _Wildcard.STAR and atoms and atoms[-1] is _Wildcard.STAR):
                    atoms.append(part)
            else:
                atoms.extend(part)
        return tuple(atoms)


@dataclass(frozen=True)
class Statement:
    effect: Effect
    #: Action names as AWS spells them (``iot:*`` for all).
    actions: tuple[str, ...]
    resources: tuple[Resource, ...]
    sid: str | None = None

    def covers(self, action: Action) -> bool:
        return action.value in self.actions or any(name in self.actions for name in _ALL_ACTIONS)


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed, validated AWS IoT policy document (the ``policies`` table stores its JSON text)."""

    statements: tuple[Statement, ...]
    version: str = POLICY_VERSION
    policy_id: str | None = None

    def to_document(self) -> dict[str, Any]:
        """The policy as a JSON-ready document that :func:`validate_policy` reads back unchanged."""
        statements: list[dict[str, Any]] = []
        for statement in self.statements:
            item: dict[str, Any] = {} if statement.sid is None else {"Sid": statement.sid}
            item["Effect"] = statement.effect.value
            item["Action"] = list(statement.actions)
            item["Resource"] = [resource.text for resource in statement.resources]
            statements.append(item)
        document: dict[str, Any] = {"Version": self.version}
        if self.policy_id is not None:
            document["Id"] = self.policy_id
        document["Statement"] = statements
        return document

    def to_json(self) -> str:
        """The document as compact JSON, the form AWS measures against its size limit."""
        return json.dumps(self.to_document(), separators=(",", ":"), ensure_ascii=False)


def parse_policy(text: str | bytes) -> PolicyDocument:
    """Parse and validate a policy document given as JSON text.

    Raises:
        PolicyError: the text is not JSON, or the document is invalid; every problem names its path.
    """
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKeyError as exc:
        raise PolicyError([PolicyProblem("", f"key {exc.key!r} appears twice in one object")]) from None
    except (ValueError, RecursionError) as exc:
        raise PolicyError([PolicyProblem("", f"not valid JSON ({exc})")]) from None
    return validate_policy(document)


def validate_policy(document: object) -> PolicyDocument:
    """Validate an already decoded policy document.

    Raises:
        PolicyError: listing every problem, each with its path (``Statement[0].Action[1]``).
    """
    problems: list[PolicyProblem] = []
    if not isinstance(document, dict):
        raise PolicyError(
            [PolicyProblem("", f"a policy document must be a JSON object, not {_kind(document)}")]
        )
    for key in document:
        if key not in ("Version", "Id", "Statement"):
            problems.append(PolicyProblem("", f"unknown key {key!r}; a policy has Version, Id and Statement"))
    version = document.get("Version")
    if version is None:
        problems.append(PolicyProblem("Version", f"required; use {POLICY_VERSION!r}"))
    elif version != POLICY_VERSION:
        problems.append(PolicyProblem("Version", f"{version!r} is not supported; use {POLICY_VERSION!r}"))
    policy_id = document.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        problems.append(PolicyProblem("Id", f"must be a string, not {_kind(policy_id)}"))
    statements: list[Statement] = []
    raw_statements = document.get("Statement")
    if raw_statements is None:
        problems.append(PolicyProblem("Statement", "required: a statement or a list of statements"))
    elif isinstance(raw_statements, dict):
        statements.extend(_statements([("Statement", raw_statements)], problems))
    elif isinstance(raw_statements, list):
        if not raw_statements:
            problems.append(PolicyProblem("Statement", "must hold at least one statement"))
        paths = [(f"Statement[{index}]", item) for index, item in enumerate(raw_statements)]
        statements.extend(_statements(paths, problems))
    else:
        problems.append(
            PolicyProblem("Statement", f"must be an object or a list, not {_kind(raw_statements)}")
        )
    if problems:
        raise PolicyError(problems)
    policy = PolicyDocument(
        statements=tuple(statements),
        policy_id=policy_id if isinstance(policy_id, str) else None,
    )
    size = len(policy.to_json())
    if size > MAX_DOCUMENT_CHARACTERS:
        raise PolicyError(
            [
                PolicyProblem(
                    "",
                    f"the document is {size} characters without whitespace; AWS IoT allows "
                    f"{MAX_DOCUMENT_CHARACTERS}",
                )
            ]
        )
    return policy


def evaluate(
    policies: Iterable[PolicyDocument], action: Action, resource: str, context: RequestContext
) -> bool:
    """Whether ``policies`` allow ``action`` on ``resource``: an explicit Deny wins, and nothing is allowed
    unless some Allow matches.

    Args:
        resource: the client id (CONNECT), topic (PUBLISH, RECEIVE) or topic filter (SUBSCRIBE), without
            an ARN prefix.
    """
    target = f"{action.resource_type}/{resource}"
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if not statement.covers(action):
                continue
            if statement.effect is Effect.ALLOW and allowed:
                continue
            for item in statement.resources:
                pattern = item.pattern(context)
                if pattern is not None and _glob_match(pattern, target):
                    if statement.effect is Effect.DENY:
                        return False
                    allowed = True
                    break
    return allowed


def default_device_policy() -> dict[str, Any]:
    """The policy a device gets unless told otherwise: connect only with its thing name as client id, and
    publish, receive and subscribe only under ``$aws/things/<thing>/`` and ``dt/<thing>/``."""
    own_topics = ("$aws/things/${iot:Connection.Thing.ThingName}/*", "dt/${iot:Connection.Thing.ThingName}/*")
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": [f"arn:aws:iot:*:*:topic/{topic}" for topic in own_topics],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [f"arn:aws:iot:*:*:topicfilter/{topic}" for topic in own_topics],
            },
        ],
    }


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _statements(items: list[tuple[str, object]], problems: list[PolicyProblem]) -> list[Statement]:
    statements = []
    for path, raw in items:
        if not isinstance(raw, dict):
            problems.append(PolicyProblem(path, f"a statement must be an object, not {_kind(raw)}"))
            continue
        before = len(problems)
        for key in raw:
            if key in ("Condition", "NotAction", "NotResource"):
                problems.append(PolicyProblem(f"{path}.{key}", "is not supported by Edgewise"))
            elif key not in _STATEMENT_KEYS:
                problems.append(
                    PolicyProblem(path, f"unknown key {key!r}; a statement has {', '.join(_STATEMENT_KEYS)}")
                )
        sid = raw.get("Sid")
        if sid is not None and not isinstance(sid, str):
            problems.append(PolicyProblem(f"{path}.Sid", f"must be a string, not {_kind(sid)}"))
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            shown = "required" if effect is None else f"{effect!r} is not an effect"
            problems.append(PolicyProblem(f"{path}.Effect", f"{shown}; use 'Allow' or 'Deny'"))
        actions = [
            _action(item_path, item, problems) for item_path, item in _strings(raw, path, "Action", problems)
        ]
        resources = [
            _resource(item_path, item, problems)
            for item_path, item in _strings(raw, path, "Resource", problems)
        ]
        if len(problems) == before:
            statements.append(
                Statement(
                    effect=Effect(str(effect)),
                    actions=tuple(dict.fromkeys(action for action in actions if action is not None)),
                    resources=tuple(resource for resource in resources if resource is not None),
                    sid=sid if isinstance(sid, str) else None,
                )
            )
    return statements


def _strings(
    raw: dict[Any, Any], path: str, key: str, problems: list[PolicyProblem]
) -> list[tuple[str, str]]:
    value = raw.get(key)
    if isinstance(value, str):
        return [(f"{path}.{key}", value)]
    if not isinstance(value, list):
        shown = "required" if value is None else f"must be a string or a list of strings, not {_kind(value)}"
        problems.append(PolicyProblem(f"{path}.{key}", shown))
        return []
    if not value:
        problems.append(PolicyProblem(f"{path}.{key}", "must hold at least one entry"))
    result = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            result.append((f"{path}.{key}[{index}]", item))
        else:
            problems.append(PolicyProblem(f"{path}.{key}[{index}]", f"must be a string, not {_kind(item)}"))
    return result


def _action(path: str, name: str, problems: list[PolicyProblem]) -> str | None:
    canonical = _CANONICAL_ACTIONS.get(name.lower())
    if canonical is None:
        known = ", ".join(action.value for action in Action)
        problems.append(PolicyProblem(path, f"unknown action {name!r}; Edgewise decides {known} and iot:*"))
    return canonical


def _resource(path: str, text: str, problems: list[PolicyProblem]) -> Resource | None:
    if text == "*":
        return Resource(text, (_Wildcard.STAR,))
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iot":
        problems.append(
            PolicyProblem(
                path,
                f"{text!r} is not an AWS IoT resource; write '*' or arn:aws:iot:<region>:<account>:<type>/<name>",
            )
        )
        return None
    if parts[1] not in _PARTITIONS:
        problems.append(PolicyProblem(path, f"unknown partition {parts[1]!r} in {text!r}"))
        return None
    body = parts[5]
    resource_type, slash, _ = body.partition("/")
    if not any(wildcard in resource_type for wildcard in "*?"):
        if resource_type not in _RESOURCE_TYPE_NAMES:
            known = ", ".join(sorted(_RESOURCE_TYPE_NAMES))
            problems.append(
                PolicyProblem(path, f"unknown resource type {resource_type!r}; use one of {known}")
            )
            return None
        if not slash:
            problems.append(PolicyProblem(path, f"{text!r} names no {resource_type}; add '/<name>'"))
            return None
    template = _template(path, body, problems)
    return None if template is None else Resource(text, template)


def _template(path: str, text: str, problems: list[PolicyProblem]) -> tuple[_TemplatePart, ...] | None:
    parts: list[_TemplatePart] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "$" and text.startswith("${", index):
            end = text.find("}", index + 2)
            if end < 0:
                problems.append(PolicyProblem(path, f"'${{' at position {index} is never closed with '}}'"))
                return None
            name = text[index + 2 : end]
            if name in ("*", "?", "$"):
                literal.append(name)
            elif name in (_CLIENT_ID, _THING_NAME, _THING_TYPE_NAME) or _ATTRIBUTE_VARIABLE.fullmatch(name):
                parts.extend(["".join(literal), _Variable(name)])
                literal = []
            else:
                supported = ", ".join(f"${{{variable}}}" for variable in SUPPORTED_VARIABLES)
                problems.append(
                    PolicyProblem(path, f"unknown policy variable '${{{name}}}'; use {supported}")
                )
                return None
            index = end + 1
            continue
        if char in "*?":
            parts.extend(["".join(literal), _Wildcard(char)])
            literal = []
        else:
            literal.append(char)
        index += 1
    parts.append("".join(literal))
    return tuple(part for part in parts if part != "")


def _glob_match(pattern: _Pattern, text: str) -> bool:
    # Linear backtracking over the last '*' only: a device-chosen topic cannot make this blow up.
    p = t = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] is _Wildcard.ONE or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] is _Wildcard.STAR:
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            p = star_p + 1
            star_t += 1
            t = star_t
        else:
            return False
    while p < len(pattern) and pattern[p] is _Wildcard.STAR:
        p += 1
    return p == len(pattern)


# --- rendering for a broker ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class TopicRule:
    """One ACL entry: ``action`` on the topics (or, for SUBSCRIBE, the subscription filters) that the
    MQTT filter ``topic_filter`` covers.

    With ``literal`` (SUBSCRIBE only), the rule covers exactly the subscription filter ``topic_filter``
    as written, its ``+``/``#`` included (Mosquitto dynamic security's ``subscribeLiteral``). A broker that
    only has pattern ACLs must drop literal Allow rules that contain wildcards, and may apply literal Deny
    rules as patterns.
    """

    action: Action
    topic_filter: str
    literal: bool = False


@dataclass(frozen=True)
class ThingPermissions:
    """What one thing may do, as MQTT filters; a Deny rule always wins over an Allow rule.

    Rendering assumes the broker makes the client id equal the thing name (the certificate's CN), so
    ``${iot:ClientId}`` is rendered as the thing name and ``can_connect`` answers for that client id only.
    """

    thing_name: str
    can_connect: bool
    allow: tuple[TopicRule, ...]
    deny: tuple[TopicRule, ...]
    #: Human-readable notes about statements that were narrowed, left out or widened.
    narrowed: tuple[str, ...]


class _Everything(enum.Enum):
    ALL_TOPICS = "all topics"


_EVERYTHING = _Everything.ALL_TOPICS


def render_for_thing(
    policies: Iterable[PolicyDocument],
    thing_name: str,
    *,
    thing_attributes: Mapping[str, str] | None = None,
    thing_type_name: str | None = None,
) -> ThingPermissions:
    """The permissions of thing ``thing_name`` under ``policies``, as Allow and Deny MQTT filters.

    Limits, all resolved on the safe side:

    - A policy ``*`` may span levels and match parts of a level; an MQTT filter cannot. An Allow becomes
      ``+`` for a whole-level ``*`` in the middle and ``#`` for a trailing ``/*``; an Allow using ``*`` or
      ``?`` inside a level, or a literal ``+``/``#`` beside a wildcard in a topic filter, is left out.
    - ``#`` also covers its parent level (``a/#`` covers ``a``), which ``a/*`` does not: an exact Deny of
      the parent is added unless the policies allow it.
    - A Deny is widened to ``#`` from its first wildcard level on; a Deny whose first level is a wildcard
      covers every topic, so that action gets no Allow rule at all.
    - MQTT's ``#`` and ``+`` do not reach ``$`` topics: an Allow of ``*`` also gets ``$aws/#``.
    """
    policies = list(policies)
    context = RequestContext(
        client_id=thing_name,
        thing_name=thing_name,
        thing_type_name=thing_type_name,
        thing_attributes=dict(thing_attributes or {}),
    )
    allow: set[TopicRule] = set()
    deny: set[TopicRule] = set()
    narrowed: list[str] = []
    denied_everything: set[Action] = set()
    for action in (Action.PUBLISH, Action.RECEIVE, Action.SUBSCRIBE):
        subscribe = action is Action.SUBSCRIBE
        for policy_index, policy in enumerate(policies):
            for statement_index, statement in enumerate(policy.statements):
                if not statement.covers(action):
                    continue
                for resource_index, resource in enumerate(statement.resources):
                    pattern = resource.pattern(context)
                    if pattern is None:
                        continue
                    where = (
                        f"policies[{policy_index}].Statement[{statement_index}].Resource[{resource_index}] "
                        f"{resource.text!r} for {action.value}"
                    )
                    for name in sorted(_names_under(pattern, f"{action.resource_type}/"), key=_pattern_text):
                        if statement.effect is Effect.ALLOW:
                            rules = _allow_rules(name, action, policies, context)
                            if rules is None:
                                narrowed.append(
                                    f"{where}: {_pattern_text(name)!r} is no MQTT filter; not granted"
                                )
                            else:
                                allow.update(rules[0])
                                deny.update(rules[1])
                        else:
                            rule = _deny_rule(name, subscribe=subscribe)
                            if rule is _EVERYTHING:
                                denied_everything.add(action)
                                narrowed.append(f"{where}: denies every topic; {action.value} gets no Allow")
                            elif rule is not None:
                                deny.add(TopicRule(action, rule[0], literal=rule[1]))
                                if rule[0] != _pattern_text(name) or rule[1] != subscribe:
                                    narrowed.append(f"{where}: widened to {rule[0]!r}")
    return ThingPermissions(
        thing_name=thing_name,
        can_connect=evaluate(policies, Action.CONNECT, thing_name, context),
        allow=tuple(sorted(rule for rule in allow if rule.action not in denied_everything)),
        deny=tuple(sorted(rule for rule in deny if rule.action not in denied_everything)),
        narrowed=tuple(narrowed),
    )


def _pattern_text(pattern: _Pattern) -> str:
    return "".join(atom if isinstance(atom, str) else atom.value for atom in pattern)


def _names_under(pattern: _Pattern, prefix: str) -> set[_Pattern]:
    """The patterns that ``<prefix><name>`` must match for ``pattern`` to match it (a glob derivative)."""
    current = {pattern}
    for char in prefix:
        current = {rest for candidate in current for rest in _step(candidate, char)}
        if not current:
            break
    return current


def _step(pattern: _Pattern, char: str) -> set[_Pattern]:
    if not pattern:
        return set()
    head = pattern[0]
    if head is _Wildcard.STAR:
        return {pattern} | _step(pattern[1:], char)
    if head is _Wildcard.ONE or head == char:
        return {pattern[1:]}
    return set()


def _levels(pattern: _Pattern) -> list[_Pattern]:
    levels: list[list[_Atom]] = [[]]
    for atom in pattern:
        if atom == "/":
            levels.append([])
        else:
            levels[-1].append(atom)
    return [tuple(level) for level in levels]


def _is_literal(pattern: _Pattern) -> bool:
    return all(isinstance(atom, str) for atom in pattern)


def _valid(name: str, *, subscribe: bool) -> bool:
    try:
        if subscribe:
            topics.validate_filter(name)
        else:
            topics.validate_topic(name)
    except topics.TopicError:
        return False
    return True


def _allow_rules(
    name: _Pattern, action: Action, policies: list[PolicyDocument], context: RequestContext
) -> tuple[list[TopicRule], list[TopicRule]] | None:
    """Allow rules covering only names ``name`` matches (and Deny rules that keep them so), or None
    when no MQTT filter can say it. Names no client can use give no rules."""
    subscribe = action is Action.SUBSCRIBE
    if _is_literal(name):
        text = _pattern_text(name)
        if not _valid(text, subscribe=subscribe):
            return [], []
        return [TopicRule(action, text, literal=subscribe and topics.has_wildcards(text))], []
    filter_levels: list[str] = []
    levels = _levels(name)
    for index, level in enumerate(levels):
        if _is_literal(level):
            text = _pattern_text(level)
            if "+" in text or "#" in text:
                # A topic never holds them, so nothing is lost; a filter would read them as wildcards.
                return None if subscribe else ([], [])
            filter_levels.append(text)
        elif level == (_Wildcard.STAR,):
            filter_levels.append("#" if index == len(levels) - 1 else "+")
        else:
            return None
    topic_filter = "/".join(filter_levels)
    allow = [TopicRule(action, topic_filter)]
    if topic_filter == "#":
        allow.append(TopicRule(action, "$aws/#"))
    deny = []
    if len(filter_levels) > 1 and filter_levels[-1] == "#":
        parent = "/".join(filter_levels[:-1])
        if "+" in filter_levels[:-1]:
            deny.append(TopicRule(action, parent))
        elif parent and not _glob_match(name, parent) and not evaluate(policies, action, parent, context):
            deny.append(TopicRule(action, parent, literal=subscribe))
    return allow, deny


def _deny_rule(name: _Pattern, *, subscribe: bool) -> tuple[str, bool] | _Everything | None:
    """A filter covering at least the names ``name`` matches, with its literal flag; None when no client
    can use any of them; everything when the first level is already a wildcard."""
    if _is_literal(name):
        text = _pattern_text(name)
        return (text, subscribe) if _valid(text, subscribe=subscribe) else None
    filter_levels: list[str] = []
    for level in _levels(name):
        level_text = _pattern_text(level) if _is_literal(level) else None
        if level_text is not None and not subscribe and ("+" in level_text or "#" in level_text):
            return None
        if level_text is None or "#" in level_text or ("+" in level_text and level_text != "+"):
            filter_levels.append("#")
            break
        filter_levels.append(level_text)
    if filter_levels == ["#"]:
        return _EVERYTHING
    return "/".join(filter_levels), False
