"""The zoo's variants table and ``samkit models``: every published model by name and file,
parameters counted from the architecture (checked against the publishers' figures), licences."""

from __future__ import annotations

import pytest

from samkit import registry
from samkit.cli_modes import parameter_count

# Parameters published by each model's authors (millions, their rounding).
PUBLISHED_PARAMS = {
    "efficientvit_sam_l0": 34.8,
    "efficientvit_sam_l1": 47.7,
    "efficientvit_sam_l2": 61.3,
    "efficientvit_sam_xl0": 117.0,
    "efficientvit_sam_xl1": 203.3,
    "edge_sam": 9.6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameters_match_the_published_figure(name: str) -> None:
    count = parameter_count(registry.get_variant(name).config) / 1e6
    print(f"{name}: {count:.2f} M (published {PUBLISHED_PARAMS[name]} M)")
    assert round(count, 1) == pytest.approx(PUBLISHED_PARAMS[name], abs=0.051)


def test_every_zoo_variant_by_name_and_file() -> None:
    zoo = [v for v in registry.VARIANTS.values() if v in registry.ZOO_ALL]
    assert {v.name for v in zoo} >= {
        "tinysam", "slimsam_50", "slimsam_77", "sam_hq_b", "sam_hq_l", "sam_hq_h",
        "sam_hq_tiny", "efficientvit_sam_l0", "efficientvit_sam_xl1", "repvit_sam",
        "edge_sam", "edge_sam_3x",
    }  # fmt: skip
    for v in zoo:
        assert registry.get_variant(v.name) is v
        assert registry.get_variant(v.weights.filename) is v
        assert v.weights.url.startswith("https://") and v.licence and v.description


def test_models_lists_size_parameters_licence_and_cache(capsys: pytest.CaptureFixture[str]) -> None:
    from samkit.cli_modes import models

    assert models({}) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:8] == [
        "name",
        "aliases",
        "file",
        "size",
        "params",
        "licence",
        "cached",
        "description",
    ]
    edge = next(line for line in out.splitlines() if line.startswith("edge_sam "))
    assert "non-commercial" in edge and " 9.6 M " in edge
