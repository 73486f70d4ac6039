"""One module per Hugging Face model family whose conversion lives outside `lenscope.model.hf`:
each maps a `config.json` to a `ModelConfig` and a checkpoint's tensors to lenscope's layout, and
`lenscope.model.hf.family_of` registers it."""
