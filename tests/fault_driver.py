"""One export (stub exporter) that SIGKILLs itself at a chosen moment; tests/test_faults.py
runs it and then checks what the folder holds.

    python -m tests.fault_driver OUT FORMAT MOMENT PAYLOAD

Moments: "exporting" (the artifact half written in staging), "checking" (staged artifact
and manifest complete, the post-export check running), "publishing" (the artifact moved to
its final name, its manifest not yet), "swapping" (a package's previous version set aside,
the new one not yet in place).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

MOMENTS = ("exporting", "checking", "publishing", "swapping")


def die(*_args) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_on_replace(moment: str) -> None:
    """Patch os.replace to die on the move that `moment` names, before it happens."""
    from casvit_deploy.pipeline.staging import STAGING_PREFIX
    from casvit_deploy.store.manifests import SUFFIX

    real = os.replace

    def replace(src, dst):
        from_staging = STAGING_PREFIX in str(src) and STAGING_PREFIX not in str(dst)
        if from_staging and ((moment == "publishing" and str(dst).endswith(SUFFIX))
                             or (moment == "swapping" and str(dst).endswith(".mlpackage"))):
            die()
        return real(src, dst)

    os.replace = replace


def main(out: str, fmt: str, moment: str, payload: str) -> None:
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export as api
    from tests.fakes import StubExporter

    exporter = StubExporter(payload.encode(), during=die if moment == "exporting" else None)
    api.exporter_for = lambda _fmt: exporter
    if moment in ("publishing", "swapping"):
        _kill_on_replace(moment)
    api.export_model(load_model(None, "xs"), fmt, Path(out), resolution=32, force=True,
                     gate=(lambda _staged, _manifest, _final: die()) if moment == "checking" else None)


if __name__ == "__main__":
    main(*sys.argv[1:])
