"""What the ml-developer's phases share: TensorFlow kept quiet, values made JSON-safe."""

from __future__ import annotations

import os
from typing import Any


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
