"""Errors of the identity domain: certificates, the certificate authority and policies.

EdgewiseError
 └── IdentityError
      ├── CertificateError         a certificate, CSR, key or CA input that cannot be used (names the field)
      ├── CertificateStatusError   a certificate status change that is not allowed (e.g. out of REVOKED)
      └── PolicyError              a policy document that is invalid (lists every problem with its path)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgewise.errors import EdgewiseError

if TYPE_CHECKING:
    from edgewise.cloud.identity.certificates import CertificateStatus


class IdentityError(EdgewiseError):
    """Base class of the identity domain's errors."""


class CertificateError(IdentityError):
    """A certificate, CSR, key or CA input that cannot be used; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.problem = message
        super().__init__(f"{field}: {message}")


class CertificateStatusError(IdentityError):
    """A status change the certificate lifecycle does not allow."""

    def __init__(self, current: CertificateStatus, target: CertificateStatus) -> None:
        self.current = current
        self.target = target
        super().__init__(f"status: a certificate that is {current.value} cannot become {target.value}")


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy document.

    ``path`` names the element the way the document spells it, e.g. ``Statement[0].Action[1]``; it is
    empty for the document as a whole.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(IdentityError):
    """A policy document that cannot be used. ``problems`` lists everything wrong with it."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        header = f"Policy document is invalid ({count} problem{'' if count == 1 else 's'}):"
        super().__init__("\n".join([header, *(str(problem) for problem in self.problems)]))
