"""Routing rules in the store: create, list, read, replace, delete, enable and disable, and the worker's counters.

Every write checks the whole rule first (its SQL with :func:`~edgewise.cloud.rules.sql.parse_rule_sql`, its
actions through :mod:`.schemas`) and commits once, so a refused request leaves nothing behind. Functions block;
the API runs them in its thread pool and the worker through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import AlreadyExistsError, LimitExceededError, NotFoundError
from edgewise.cloud.rules.models import LAST_ERROR_MAX_LENGTH, Rule
from edgewise.cloud.rules.schemas import RuleCreate, RulePublic, TopicRulePayload
from edgewise.cloud.rules.sql import parse_rule_sql

#: AWS IoT's limit of rules per account.
MAX_RULES: Final = 1000
_KIND = "Rule"


@dataclass(frozen=True)
class RuleCounters:
    """What the worker adds to a rule's counters since it last wrote them."""

    matched: int = 0
    actions_failed: int = 0
    last_error: str | None = None
    last_error_at: datetime.datetime | None = None


def _apply(rule: Rule, payload: TopicRulePayload) -> None:
    parse_rule_sql(payload.sql)
    rule.sql = payload.sql
    rule.sql_version = payload.aws_iot_sql_version
    rule.description = payload.description
    rule.actions = [action.model_dump(by_alias=True, exclude_none=True) for action in payload.actions]
    rule.error_action = (
        payload.error_action.model_dump(by_alias=True, exclude_none=True) if payload.error_action else None
    )
    rule.enabled = not payload.rule_disabled
    rule.updated_at = utcnow()


def create_rule(session: Session, request: RuleCreate) -> Rule:
    """Store a new rule.

    Raises:
        RuleSqlError: the SQL does not parse or is not supported (with its position).
        AlreadyExistsError: a rule of that name exists.
        LimitExceededError: there are 1000 rules already.
    """
    name = request.rule_name
    rule = Rule(name=name, matched=0, actions_failed=0)
    _apply(rule, request.topic_rule_payload)
    rule.created_at = rule.updated_at
    if session.scalar(sa.select(Rule.id).where(Rule.name == name)) is not None:
        raise AlreadyExistsError(_KIND, name)
    if (session.scalar(sa.select(sa.func.count()).select_from(Rule)) or 0) >= MAX_RULES:
        raise LimitExceededError(f"There are {MAX_RULES} rules already, the most a cloud keeps")
    session.add(rule)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExistsError(_KIND, name) from None
    return rule


def get_rule(session: Session, name: str) -> Rule:
    """The rule called ``name``.

    Raises:
        NotFoundError: there is none.
    """
    rule = session.scalar(sa.select(Rule).where(Rule.name == name))
    if rule is None:
        raise NotFoundError(_KIND, name)
    return rule


def list_rules(session: Session, *, limit: int, offset: int) -> tuple[list[Rule], int]:
    """A page of rules by name, and how many there are in all."""
    count = session.scalar(sa.select(sa.func.count()).select_from(Rule)) or 0
    rules = session.scalars(sa.select(Rule).order_by(Rule.name).limit(limit).offset(offset)).all()
    return list(rules), count


def replace_rule(session: Session, name: str, payload: TopicRulePayload) -> Rule:
    """Replace what the rule ``name`` does (AWS's ``ReplaceTopicRule``); its counters stay.

    Raises:
        NotFoundError: there is no such rule.
        RuleSqlError: the new SQL does not parse or is not supported.
    """
    rule = get_rule(session, name)
    _apply(rule, payload)
    session.commit()
    return rule


def delete_rule(session: Session, name: str) -> None:
    """Delete the rule ``name``.

    Raises:
        NotFoundError: there is no such rule.
    """
    session.delete(get_rule(session, name))
    session.commit()


def set_enabled(session: Session, name: str, *, enabled: bool) -> Rule:
    """Enable or disable the rule ``name`` (AWS's ``EnableTopicRule`` / ``DisableTopicRule``).

    Raises:
        NotFoundError: there is no such rule.
    """
    rule = get_rule(session, name)
    if rule.enabled != enabled:
        rule.enabled = enabled
        rule.updated_at = utcnow()
        session.commit()
    return rule


def rule_public(rule: Rule) -> RulePublic:
    """The API shape of ``rule``."""
    return RulePublic(
        rule_name=rule.name,
        sql=rule.sql,
        description=rule.description,
        actions=rule.actions,
        error_action=rule.error_action,
        rule_disabled=not rule.enabled,
        aws_iot_sql_version=rule.sql_version,
        created_at=rule.created_at,
        last_modified_at=rule.updated_at,
        matched=rule.matched,
        actions_failed=rule.actions_failed,
        last_error=rule.last_error,
    )


def enabled_rules(session: Session) -> list[Rule]:
    """Every enabled rule, by name."""
    return list(session.scalars(sa.select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.name)).all())


def rules_version(session: Session) -> tuple[tuple[str, datetime.datetime], ...]:
    """What changes whenever a rule is created, changed, enabled, disabled or deleted: each rule's name and time
    of its last change (cheap to read every few seconds)."""
    rows = session.execute(sa.select(Rule.name, Rule.updated_at).order_by(Rule.name)).all()
    return tuple((name, updated_at) for name, updated_at in rows)


def add_counters(session: Session, counters: Mapping[str, RuleCounters]) -> None:
    """Add the worker's counts to each named rule in one transaction; rules deleted meanwhile are skipped."""
    for name, delta in counters.items():
        values: dict[str, object] = {
            "matched": Rule.matched + delta.matched,
            "actions_failed": Rule.actions_failed + delta.actions_failed,
        }
        if delta.last_error is not None:
            values["last_error"] = delta.last_error[:LAST_ERROR_MAX_LENGTH]
            values["last_error_at"] = delta.last_error_at
        session.execute(sa.update(Rule).where(Rule.name == name).values(values))
    session.commit()
