"""The report's seven sections, in page order: each module names its section (ID, TITLE, a one-line GUIDE) and
`render(data, page, section)` fills it with the blocks, figures and tables of its part of ReportData."""

from __future__ import annotations

from collections.abc import Callable

from filterlake.report.document import Page, Section
from filterlake.report.facts import ReportData
from filterlake.report.sections import basis, distributions, glance, medical, phenomena, quality, shifts

MODULES = (glance, basis, distributions, shifts, medical, quality, phenomena)


def render_sections(
    data: ReportData, page: Page, on_section: Callable[[str], None] | None = None
) -> list[Section]:
    """Every section, numbered in page order; ``on_section`` sees each section's id when it is done."""
    sections = []
    for number, module in enumerate(MODULES, 1):
        section = Section(module.ID, f"{number}. {module.TITLE}", module.GUIDE)
        module.render(data, page, section)
        sections.append(section)
        if on_section:
            on_section(module.ID)
    return sections
