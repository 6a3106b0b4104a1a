"""``matrix:`` expands one document into one item per combination, with readable ids."""

from __future__ import annotations

from pathlib import Path

from pytest_distproc.scenario.loader import load_text

DOC = """\
name: grid
matrix:
  kind: [raise, crash]
  region: [A, B]
regions: {A: {records: 2}, B: {records: 2}}
faults: [{region: "${region}", kind: "${kind}", message: "boom in ${region}"}]
"""


def test_expands_every_combination_with_typed_values(tmp_path: Path) -> None:
    docs = load_text(DOC, tmp_path / "grid.yaml")
    assert [d.name for d in docs] == ["grid[raise-A]", "grid[raise-B]", "grid[crash-A]", "grid[crash-B]"]
    scenario = docs[1].scenario
    assert scenario is not None and scenario.name == "grid[raise-B]"
    assert (scenario.faults[0].region, scenario.faults[0].kind) == ("B", "raise")
    assert scenario.faults[0].message == "boom in B"


def test_numbers_keep_their_type(tmp_path: Path) -> None:
    text = "matrix: {n: [1, 3]}\nregions: {A: {records: '${n}'}}\n"
    docs = load_text(text, tmp_path / "n.yaml")
    assert [d.scenario.regions[0].records for d in docs if d.scenario] == [1, 3]


def test_unknown_variable_is_located(tmp_path: Path) -> None:
    text = "matrix: {kind: [raise]}\nregions: {A: {records: 2}}\nfaults: [{region: A, kind: '${knd}'}]\n"
    (doc,) = load_text(text, tmp_path / "bad.yaml")
    assert doc.error is not None
    assert str(doc.error.problems[0]) == (
        f"{tmp_path / 'bad.yaml'}:3: $.faults[0].kind: unknown matrix variable ${{knd}}; variables: kind"
    )


def test_bad_matrix_shapes(tmp_path: Path) -> None:
    for text, fragment in [
        ("matrix: [1, 2]\nregions: {A: {records: 2}}\n", "expected a mapping of variable -> list of values"),
        ("matrix: {kind: []}\nregions: {A: {records: 2}}\n", "expected a non-empty list of values"),
        ("matrix: {kind: [{a: 1}]}\nregions: {A: {records: 2}}\n", "plain scalars"),
        ("matrix: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10,11]}\n"
         "regions: {A: {records: 2}}\n", "expands to 1100 scenarios"),
    ]:
        (doc,) = load_text(text, tmp_path / "m.yaml")
        assert doc.error is not None and fragment in str(doc.error), (text, str(doc.error))
        assert doc.error.problems[0].line == 1


def test_one_bad_combination_fails_only_itself(tmp_path: Path) -> None:
    text = "matrix: {kind: [raise, explode]}\nregions: {A: {records: 2}}\nfaults: [{region: A, kind: '${kind}'}]\n"
    docs = load_text(text, tmp_path / "m.yaml")
    assert [d.error is None for d in docs] == [True, False]
    assert docs[1].error is not None and "explode" in str(docs[1].error)
