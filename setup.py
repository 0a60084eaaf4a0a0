"""Ship the root `templates/` folder inside the wheel as `workflows/templates`.

The operator-editable templates live at the repository root (the project's layout); a
plain `pip install .` must still carry them, so the build copies them into the package.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTemplates(build_py):
    """Copy templates/ into the built package."""

    def run(self) -> None:
        """Build as usual, then add the templates."""
        super().run()
        source = Path(__file__).parent / "templates"
        if source.is_dir():
            shutil.copytree(source, Path(self.build_lib) / "workflows" / "templates",
                            dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithTemplates})
