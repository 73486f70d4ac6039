"""The dictionary bench: SAEBench's evaluations of SAEs and transcoders, offline, on code.

    from lenscope.bench import BenchConfig, run_bench
    res = run_bench(model, [("L2-k16", sae)], token_stream(model), Path("out"), BenchConfig())
    res.dictionaries[0].core.ce_loss_score, res.dictionaries[0].probing.mean_sparse_accuracy

Core metrics (`core`), code labels from `tokenize` / `ast` (`labels`, `codeset`), sparse
probing (`probe`, `probing`), the many-dictionary run with resumable per-dictionary results
(`suite`) and the comparison table and frontier plots (`table`).
"""

from lenscope.bench.load import load_dictionary
from lenscope.bench.suite import BenchConfig, BenchResult, run_bench
from lenscope.bench.table import METRICS, plot_frontiers, row

__all__ = [
    "METRICS",
    "BenchConfig",
    "BenchResult",
    "load_dictionary",
    "plot_frontiers",
    "row",
    "run_bench",
]
