"""Looking at pages as a person would: axe-core's accessibility check and screenshots at two widths."""

from __future__ import annotations

from pathlib import Path

from axe_playwright_python.async_playwright import Axe

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# axe-core's impact levels that fail a test; "minor" and "moderate" are left to review.
FAILING_IMPACTS = ("serious", "critical")

_axe = Axe()


async def accessibility_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    results = await _axe.run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v.get("impact") in FAILING_IMPACTS]


async def screenshots(page, directory: Path, name: str) -> list[Path]:
    """Full-page screenshots at desktop and phone width, `<name>-desktop.png` and `<name>-phone.png`."""
    directory.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    paths = []
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        path = directory / f"{name}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    if size:
        await page.set_viewport_size(size)
    return paths
