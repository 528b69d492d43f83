"""pfd: pre-train, fine-tune, distill material-specific force fields."""

from __future__ import annotations

__version__ = "0.1.0"
