"""Routing rules in the AWS IoT SQL dialect: SQL parsed with sqlglot (:mod:`.sql`), evaluated per message
(:mod:`.evaluate`), actions (:mod:`.actions`: republish, telemetry, HTTP, the error action), the ``rules`` table
and its service, the REST routes, and the :class:`RulesWorker` that runs the enabled rules on the broker's
messages."""

from __future__ import annotations

from edgewise.cloud.rules.actions import RuleActionError as RuleActionError
from edgewise.cloud.rules.evaluate import RuleMessage as RuleMessage
from edgewise.cloud.rules.evaluate import RuleOutput as RuleOutput
from edgewise.cloud.rules.evaluate import evaluate as evaluate
from edgewise.cloud.rules.models import Rule as Rule
from edgewise.cloud.rules.sql import RuleQuery as RuleQuery
from edgewise.cloud.rules.sql import RuleSqlError as RuleSqlError
from edgewise.cloud.rules.sql import parse_rule_sql as parse_rule_sql
from edgewise.cloud.rules.worker import RulesWorker as RulesWorker
from edgewise.cloud.rules.worker import RulesWorkerStatistics as RulesWorkerStatistics

__all__ = [
    "Rule",
    "RuleActionError",
    "RuleMessage",
    "RuleOutput",
    "RuleQuery",
    "RuleSqlError",
    "RulesWorker",
    "RulesWorkerStatistics",
    "evaluate",
    "parse_rule_sql",
]
