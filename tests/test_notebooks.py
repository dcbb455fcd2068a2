"""The guided notebooks: committed without outputs, and run top to bottom with the small CI parameters."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_six_guided_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert "QUICK" in first_code.source, "the first code cell holds the parameters"
    assert "Learning goals" in notebook.cells[0].source
    assert any("<details>" in c.source for c in notebook.cells if c.cell_type == "markdown"), "hidden solutions"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, data_root, monkeypatch):
    monkeypatch.setenv("MINSNR_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MINSNR_DATA_ROOT", str(data_root))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   ).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
