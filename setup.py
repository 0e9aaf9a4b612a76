"""Build step: compile the gettext catalogs (.po → .mo) into the package, so that every
install (a wheel, or `pip install -e .`) speaks every language it has a catalog for."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


def compile_catalogs() -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in sorted(ROOT.glob("ticketing/locale/*/LC_MESSAGES/*.po")):
        with po.open("rb") as file:
            catalog = read_po(file)
        with po.with_suffix(".mo").open("wb") as file:
            write_mo(file, catalog)


class BuildPyWithCatalogs(build_py):
    """build_py that compiles the catalogs first (editable installs run it too)."""

    def run(self) -> None:
        compile_catalogs()
        super().run()


setup(cmdclass={"build_py": BuildPyWithCatalogs})
