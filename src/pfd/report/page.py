"""The report's page: ``templates/index.html.j2`` rendered with Jinja2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pfd.config import RunConfig
from pfd.report.sections import slug


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, None as '-'."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def render(numbers: dict, config: RunConfig, out: Path) -> str:
    """The HTML page of ``numbers`` (report.json); figures are the PNGs in ``out``."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("pfd.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["slug"] = slug
    template = env.get_template("index.html.j2")
    images = {p.name for p in out.glob("*.png")}
    return template.render(name=config.name, n=numbers, images=images)
