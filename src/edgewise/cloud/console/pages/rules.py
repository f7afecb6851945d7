"""Rules pages: every routing rule with its counters, one rule's SQL and actions, and a form that creates a rule
from its SQL and actions (AWS IoT's action objects, as JSON). Only an admin token may create one; the API says so
to anyone else, and the form shows its message."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApiDep, ConsoleApiError, listing, render

router = APIRouter()

SQL_MAX_LENGTH = 16 * 1024
ACTIONS_MAX_LENGTH = 64 * 1024


@router.get("/rules")
async def rules(request: Request, api: ConsoleApiDep) -> Response:
    """Routing rules by name, with their counters, and the form that creates one."""
    return await listing(request, api, "rules", "rules/index.html", title="Rules")


@router.get("/rules/{name}")
async def rule(request: Request, api: ConsoleApiDep, name: str) -> Response:
    """One rule: its SQL, actions, error action and counters."""
    described = await api.get(f"/rules/{quote(name, safe='')}")
    return render(
        request,
        "rules/rule.html",
        title=name,
        rule=described,
        actions=[json.dumps(action, indent=2, sort_keys=True) for action in described["actions"]],
        error_action=json.dumps(described["errorAction"], indent=2, sort_keys=True)
        if described["errorAction"]
        else None,
    )


@router.post("/rules")
async def create_rule(
    request: Request,
    api: ConsoleApiDep,
    name: Annotated[str, Form(max_length=128)],
    sql: Annotated[str, Form(max_length=SQL_MAX_LENGTH)],
    actions: Annotated[str, Form(max_length=ACTIONS_MAX_LENGTH)] = "[]",
    description: Annotated[str, Form(max_length=1024)] = "",
    disabled: Annotated[bool, Form()] = False,
) -> Response:
    """Create a rule from the form; a refusal (bad SQL, a read-only token) re-shows it with the API's message."""
    entered = {"name": name, "sql": sql, "actions": actions, "description": description, "disabled": disabled}

    async def refused(problem: str, status_code: int) -> Response:
        return await listing(
            request,
            api,
            "rules",
            "rules/index.html",
            title="Rules",
            error=problem,
            status_code=status_code,
            entered=entered,
        )

    try:
        parsed = json.loads(actions or "[]")
    except ValueError as exc:
        return await refused(f"Field 'actions' is not valid JSON: {exc}", 422)
    if not isinstance(parsed, list):
        return await refused("Field 'actions' must be a JSON array of action objects", 422)
    payload = {"sql": sql, "description": description, "actions": parsed, "ruleDisabled": disabled}
    try:
        created = await api.post("/rules", {"ruleName": name, "topicRulePayload": payload})
    except ConsoleApiError as exc:
        return await refused(exc.message, exc.status)
    return RedirectResponse(f"/console/rules/{quote(created['ruleName'], safe='')}", status_code=303)
