"""``python -m edgewise.components.inference.verify PACKAGE_DIR --keys KEYS``: check a model package on the device.

Exits 0 when the package in PACKAGE_DIR verifies against one of KEYS (its signature, manifest and every file's
digest), printing what it verified; otherwise prints one line, ``model package refused: <reason naming the file
or field>``, to stderr and exits 1. KEYS is a JSON list of ``"ed25519:..."`` texts or one such text.

A model component (``edgewise.models.NAME``) runs it as its Install step, so that a package that was tampered
with fails the deployment, the reason in the deployment's status (the runtime puts a failed step's last stderr
line in the component's failure reason). The step is exactly :data:`INSTALL_SCRIPT`::

    "$EDGEWISE_PYTHON" -m edgewise.components.inference.verify {artifacts:path} --keys '{edgewise.ml.Inference:configuration:/trustedKeys}'

The runtime runs a step with ``sh -c``; ``EDGEWISE_PYTHON`` is the runtime's interpreter, and
``{edgewise.ml.Inference:configuration:/trustedKeys}`` renders the inference component's ``trustedKeys`` list as
compact JSON (``["ed25519:...","ed25519:..."]``: base64 and ``:`` only, so the single quotes hold it). A recipe
may read another component's configuration only when that component is a direct dependency, so the model
component declares ``edgewise.ml.Inference`` as a SOFT dependency (:data:`INFERENCE_DEPENDENCY`). Only the
standard library and ``cryptography`` are imported: the check runs in well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

from edgewise.components.inference.config import parse_trusted_keys
from edgewise.components.inference.errors import InferenceConfigError
from edgewise.protocol.model_package import PackageError, verify_package

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

INFERENCE_COMPONENT: Final = "edgewise.ml.Inference"
#: The Install step of a model component's recipe.
INSTALL_SCRIPT: Final = (
    '"$EDGEWISE_PYTHON" -m edgewise.components.inference.verify {artifacts:path} '
    "--keys '{edgewise.ml.Inference:configuration:/trustedKeys}'"
)
#: The dependency a model component declares so that its recipe can read the trusted keys.
INFERENCE_DEPENDENCY: Final = {
    INFERENCE_COMPONENT: {"VersionRequirement": ">=1.0.0 <2.0.0", "DependencyType": "SOFT"}
}
_REFUSED = "model package refused: "


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 1, like every other refusal, rather than argparse's usage text and exit 2.
        print(f"{_REFUSED}{message}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m edgewise.components.inference.verify",
        description="Check a model package's signature, manifest and file digests against trusted keys.",
    )
    parser.add_argument("package", nargs="?", type=Path, help="the package directory")
    parser.add_argument("--package", dest="package_option", type=Path, help="the package directory (same)")
    parser.add_argument("--keys", required=True, help='a JSON list of "ed25519:..." keys, or one key')
    args = parser.parse_args(argv)
    package: Path | None = args.package or args.package_option
    if package is None:
        parser.error("the package directory is required")
    try:
        keys = _keys(args.keys)
        manifest = verify_package(package, [key for _, key in keys])
    except (PackageError, InferenceConfigError) as error:
        print(f"{_REFUSED}{error}", file=sys.stderr)
        return 1
    print(
        f"model package {manifest.name} version {manifest.version} verified (key {manifest.key_id}) in {package}"
    )
    return 0


def _keys(text: str) -> list[tuple[str, Ed25519PublicKey]]:
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        raise InferenceConfigError(
            "trustedKeys",
            f"--keys got {stripped[:80]!r}, a recipe variable the runtime did not replace: the model component "
            f"must declare {INFERENCE_COMPONENT} as a dependency to read its configuration",
        )
    if stripped.startswith("["):
        try:
            value: object = json.loads(stripped)
        except ValueError:
            raise InferenceConfigError(
                "trustedKeys", f"--keys is not a JSON list: {stripped[:80]!r}"
            ) from None
    else:
        value = stripped
    parsed = parse_trusted_keys(value)
    if not parsed:
        raise InferenceConfigError(
            "trustedKeys", f"is empty: set {INFERENCE_COMPONENT}'s trustedKeys to the keys that sign models"
        )
    return parsed


__all__ = ["INFERENCE_DEPENDENCY", "INSTALL_SCRIPT", "main"]

if __name__ == "__main__":
    sys.exit(main())
