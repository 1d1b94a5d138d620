"""matplotlib for every figure of lengen: pyplot on the Agg backend, and a figure as PNG bytes.

Figures are rendered to bytes first, so an HTML report can embed the same image that is written
beside it (``lengen.report``, ``lengen.text``, ``lengen check``).
"""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed, and never one picked up by accident),
    imported when the first figure is drawn: it costs about a second that commands drawing nothing
    (``lengen --help``, ``lengen tasks``) would otherwise pay at start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any, dpi: int = 130, tight: bool = False) -> bytes:
    """``fig`` as PNG bytes (``tight``: cropped to its content), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
    return buf.getvalue()
