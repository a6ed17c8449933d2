"""Where the shared captured fixtures live: ``shared/`` beside the repository.

``$QWEND_SHARED`` overrides it for checkouts that live elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("QWEND_SHARED", str(ROOT.parent / "shared")))
NPU_SMI_FIXTURES = SHARED / "fixtures" / "npu-smi"
