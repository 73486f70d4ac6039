"""Task-level circuit discovery: score every edge of a model's graph for a task (exact patching,
EAP, EAP-IG, ACDC), choose a circuit, and measure its faithfulness under a named ablation.

`lenscope.discover.api.discover` is the entry point; see docs/discover.md."""
