"""Conversions of the Hugging Face families added after the first five (`lenscope.model.hf`
registers them): Gemma 1/2/3 (`gemma`), Qwen3 and OLMo-2 (`qk`)."""
