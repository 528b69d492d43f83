"""``pfd report``: what a scientist checks before trusting a force field.

Each model of a run (the foundation model zero-shot, the fine-tuned teacher,
the distilled student) against DFT where affordable: errors and parity plots,
the learning curve, equation of state, phonon bands, vacancy formation energy
and surface energies (DFT at the teacher's relaxed atoms, in the same cells),
diffusion and RDF, and speed. The physics lives in :mod:`pfd.analysis`; this
package runs it for the run's models, caches each section under
``report/<section>.json`` keyed by a hash of what went in (so a rerun, or a
copy of the run directory elsewhere, reuses it), plots it and renders the
page from ``templates/index.html.j2``. DFT points are DFT jobs under
``report/dft/``, read back rather than rerun.
"""

from __future__ import annotations

from pfd.report.build import write_report

__all__ = ["write_report"]
