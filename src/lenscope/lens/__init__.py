"""The logit lens and the tuned lens: what each layer of the residual stream predicts.

from lenscope.lens import logit_lens, lens_generation
res = logit_lens(model, "The keys to the cabinet", watch=[" is", " are"])
res.layer_predictions(-1); res.rankings_watch(-1); res.heatmaps()   # inline in notebooks
gen = lens_generation(model, "for i in range(", 8)                # Ecco's rankings
lens, info = train_tuned_lens(model, tokens); logit_lens(model, text, tuned=lens)
logit_lens(model, text, tuned=load_tuned_lens("mini-tuned", model))   # shipped; or "auto"
logit_lens(model, text, precision="bf16")                            # opt-in, approximate
"""

from lenscope.lens.core import logit_lens
from lenscope.lens.evaluate import evaluate_lenses, plot_lens_eval
from lenscope.lens.generation import lens_generation
from lenscope.lens.result import GenerationLens, LensResult
from lenscope.lens.train import train_tuned_lens
from lenscope.lens.tuned import (
    TunedLens,
    default_tuned_lens,
    default_tuned_path,
    find_tuned_lens,
    load_tuned_lens,
    save_tuned_lens,
)

__all__ = [
    "GenerationLens",
    "LensResult",
    "TunedLens",
    "default_tuned_lens",
    "default_tuned_path",
    "evaluate_lenses",
    "find_tuned_lens",
    "lens_generation",
    "load_tuned_lens",
    "logit_lens",
    "plot_lens_eval",
    "save_tuned_lens",
    "train_tuned_lens",
]
