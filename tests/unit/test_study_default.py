"""The default-model study script, end to end on a small slice of the real photos."""

from __future__ import annotations

import re

import pytest

from bench.study_default import main, stratified_folds

pytestmark = pytest.mark.realphotos


def test_stratified_folds_spread_every_breed_and_the_singletons() -> None:
    breeds = [0] * 10 + [1] * 3 + list(range(2, 12))  # ten single-photo breeds
    folds = stratified_folds(breeds, k=5, seed=0)
    assert sorted({folds[i] for i in range(10)}) == [0, 1, 2, 3, 4]  # 2 of breed 0 per fold
    assert len({folds[i] for i in range(10, 13)}) == 3  # breed 1: three different folds
    sizes = [folds.count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 1
    assert folds == stratified_folds(breeds, k=5, seed=0)  # the seed fixes them


def test_study_writes_a_table_of_fractions(labelled_photos, tmp_path, capsys) -> None:
    photos = labelled_photos[0].path.parent
    out = tmp_path / "default-model.md"
    args = ["--photos", str(photos), "--out", str(out), "--models", "lite0", "--limit", "16"]
    args += ["--folds", "2", "--bench-seconds", "0.05", "--bench-rounds", "1", "--bench-batch", "4"]
    assert main(args) == 0

    table = capsys.readouterr().out
    report = out.read_text(encoding="utf-8")
    assert table.strip() in report
    rows = {
        cells[0]: cells[1:]
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| candidate")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for name in ("lite0", "lite0 + flip", "lite0 @ 256px", "lite0 2 crop scales + flip"):
        assert name in rows
    assert any("zero-training head (same folds), 2-fold CV" in name for name in rows)
    assert any("nested-CV choice" in name for name in rows)
    assert rows["lite0"][4] == "1.00x"  # speed is relative to lite0
    for name, (top1, top5, dog, img_s, speed, _notes) in rows.items():
        for cell in (top1, top5, dog):
            for number in re.findall(r"\d+\.\d+", cell):  # "0.750 ± 0.040" or "-"
                assert 0.0 <= float(number) <= 1.0, (name, cell)
        assert float(img_s) > 0
        assert float(speed.removesuffix("x")) > 0
    assert "Winner" in report or "Nothing beats" in report
