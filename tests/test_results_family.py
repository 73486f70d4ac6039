"""Results are one family: dataclasses with a JSON form (`JsonResult.to_json`). Pydantic models
are kept for inputs that need validation (questions, trace hops, compare sides, interventions)
and for the server's own request/response schemas."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest
import torch

from lenscope.jsonable import JsonResult, to_jsonable

SRC = Path(__file__).resolve().parents[1] / "src" / "lenscope"
PYDANTIC_INPUTS = {
    "LogitDiff",
    "Logit",
    "Prob",
    "AttentionScore",
    "Hop",
    "Side",
    "Ablate",
    "Patch",
    "Steer",
    "Clamp",
    "InterventionSet",
    "FeatureEdit",
}
RESULTS = {
    "lenscope.predict": ["NextTokens"],
    "lenscope.attribution.results": ["WhyResult", "TraceResult"],
    "lenscope.attribution.compare": ["Comparison"],
    "lenscope.attribution.attention": ["AttentionResult"],
    "lenscope.lens.result": ["LensResult", "GenerationLens"],
    "lenscope.lens.evaluate": ["LensEval"],
    "lenscope.lens.train": ["TunedTraining"],
    "lenscope.circuits.report": ["CircuitReport"],
    "lenscope.circuits.heads": ["HeadScores", "InductionCircuit"],
    "lenscope.circuits.composition": ["CompositionScores", "CopyingScores"],
    "lenscope.circuits.paths": ["PathExpansion"],
    "lenscope.circuits.phase": ["PhaseCurve"],
    "lenscope.circuits.tables": ["TokenTable"],
    "lenscope.markov.chain": ["MarkovChain"],
    "lenscope.markov.compare": ["ChainComparison"],
    "lenscope.markov.empirical": ["EmpiricalTransitions"],
    "lenscope.records.results": ["NodeRecord", "TokenHit", "ActiveNode"],
    "lenscope.records.harvest": ["HarvestResult"],
    "lenscope.sae.evaluate": ["SAEEvalResult"],
    "lenscope.sae.ablation": ["AblationSparsity"],
    "lenscope.sae.experiments": ["ExperimentResult"],
    "lenscope.sae.train": ["SAETrainResult"],
    "lenscope.train.loop": ["TrainResult"],
    "lenscope.explain.run": ["ExplainSummary"],
    "lenscope.discover.result": ["DiscoverResult", "Faithfulness", "EdgeScore"],
    "lenscope.graphs.result": ["GraphScores", "GraphSummary"],
    "lenscope.bench.core": ["CoreMetrics"],
    "lenscope.bench.probing": ["ProbingResult"],
    "lenscope.bench.absorption": ["AbsorptionResult", "TPPResult"],
    "lenscope.bench.suite": ["DictionaryBench"],
}


def pydantic_classes(root: Path) -> dict[str, str]:
    """Public classes outside the server whose bases name BaseModel -> their file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "server" in path.relative_to(root).parts:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and any(
                "BaseModel" in ast.unparse(b) for b in node.bases
            ):
                out[node.name] = str(path.relative_to(root))
    return out


def test_pydantic_models_outside_the_server_are_inputs() -> None:
    found = pydantic_classes(SRC)
    assert set(found) >= {"InterventionSet", "LogitDiff"}
    extra = {name: where for name, where in found.items() if name not in PYDANTIC_INPUTS}
    assert not extra, f"result types must be dataclasses (JsonResult), not pydantic: {extra}"


@pytest.mark.parametrize("module", sorted(RESULTS))
def test_results_are_dataclasses_with_a_json_form(module: str) -> None:
    mod = importlib.import_module(module)
    for name in RESULTS[module]:
        cls = getattr(mod, name)
        assert dataclasses.is_dataclass(cls), name
        assert issubclass(cls, JsonResult), name


@dataclasses.dataclass
class _Inner(JsonResult):
    x: torch.Tensor
    y: float


@dataclasses.dataclass
class _Outer(JsonResult):
    inner: list[_Inner]
    path: Path
    extra: dict[int, tuple[float, ...]]


def test_to_json_walks_nested_results_tensors_and_non_finite_floats() -> None:
    r = _Outer([_Inner(torch.tensor([1.0, 2.0]), float("nan"))], Path("a/b"), {3: (1.5, 2.5)})
    want = {"inner": [{"x": [1.0, 2.0], "y": None}], "path": "a/b", "extra": {"3": [1.5, 2.5]}}
    assert r.to_json() == want
    assert to_jsonable([r]) == [want]
