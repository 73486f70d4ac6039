"""The embedded default question: what `make demo`, the CLI and the web page open with.

On the shipped `mini` model, after this code prompt ")" has probability ~0.42 and "," ~0.06:
why does the model close the call rather than pass another argument?
"""

from __future__ import annotations

DEMO_MODEL = "mini"
DEMO_PROMPT = "    self.assertEqual(result, expected"
DEMO_TARGET = ")"
DEMO_DISTRACTOR = ","
