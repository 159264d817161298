"""The HTML report of a run: one self-contained page (inline figures, no internet).

report   write RUN/report/index.html and return its path
"""

from ._report import report

__all__ = ["report"]
