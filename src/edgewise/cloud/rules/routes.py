"""REST routes of routing rules (AWS IoT's CreateTopicRule, GetTopicRule, ListTopicRules, ReplaceTopicRule,
DeleteTopicRule, EnableTopicRule, DisableTopicRule). Reads: any role; writes: admin only, since a rule can post
the fleet's data to any URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from edgewise.cloud.auth import require_access
from edgewise.cloud.auth.roles import Access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.rules import service
from edgewise.cloud.rules.schemas import (
    RULE_NAME_MAX_LENGTH,
    RULE_NAME_PATTERN,
    RuleCreate,
    RulePublic,
    RulesPublic,
    TopicRulePayload,
)

RuleName = Annotated[
    str, Path(alias="ruleName", min_length=1, max_length=RULE_NAME_MAX_LENGTH, pattern=RULE_NAME_PATTERN)
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(
    dependencies=[Depends(require_access(write=Access.ADMIN))], responses=ERROR_RESPONSES, tags=["rules"]
)


@router.post("/rules", status_code=status.HTTP_201_CREATED)
def create_rule(session: SessionDep, request: RuleCreate) -> RulePublic:
    """Create a routing rule; SQL that does not parse is refused with the position of the problem."""
    return service.rule_public(service.create_rule(session, request))


@router.get("/rules")
def list_rules(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> RulesPublic:
    """Routing rules by name, with their counters."""
    rules, count = service.list_rules(session, limit=limit, offset=offset)
    return RulesPublic(data=[service.rule_public(rule) for rule in rules], count=count)


@router.get("/rules/{ruleName}")
def get_rule(session: SessionDep, name: RuleName) -> RulePublic:
    """One routing rule and its counters."""
    return service.rule_public(service.get_rule(session, name))


@router.put("/rules/{ruleName}")
def replace_rule(session: SessionDep, name: RuleName, payload: TopicRulePayload) -> RulePublic:
    """Replace what a rule does (its SQL, actions, error action, enabled state); its counters stay."""
    return service.rule_public(service.replace_rule(session, name, payload))


@router.delete("/rules/{ruleName}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_rule(session: SessionDep, name: RuleName) -> None:
    """Delete a routing rule."""
    service.delete_rule(session, name)


@router.post("/rules/{ruleName}/enable")
def enable_rule(session: SessionDep, name: RuleName) -> RulePublic:
    """Enable a rule: it acts on the next matching message."""
    return service.rule_public(service.set_enabled(session, name, enabled=True))


@router.post("/rules/{ruleName}/disable")
def disable_rule(session: SessionDep, name: RuleName) -> RulePublic:
    """Disable a rule: it stops acting on messages and keeps its counters."""
    return service.rule_public(service.set_enabled(session, name, enabled=False))
