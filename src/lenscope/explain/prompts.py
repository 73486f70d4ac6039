"""Few-shot chat prompts for explaining and simulating nodes, written for lenscope.

They follow the manner of OpenAI's "Language models can explain neurons in language models":
token<TAB>activation lists with activations on a 0-10 scale, one explanation sentence that
completes "the main thing this neuron does is find", and a simulator that fills in the
activations of unseen text from the explanation alone. The few-shot examples are our own and use
Python source, lenscope's default corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

from lenscope.explain.client import Message

LEAD = "the main thing this neuron does is find"

EXPLAIN_SYSTEM = (
    "We are studying neurons in a neural network that reads Python source code and English "
    "text. Each neuron looks for one particular thing in a short document. Look at the parts of "
    "the document the neuron activates for and summarize in a single sentence what the neuron "
    "is looking for. Don't list examples of words.\n\nThe activation format is "
    "token<tab>activation. Activation values range from 0 to 10. A neuron finding what it's "
    "looking for is represented by a non-zero activation value. The higher the activation "
    "value, the stronger the match."
)

SIMULATE_SYSTEM = (
    "We are studying neurons in a neural network that reads Python source code and English "
    "text. Each neuron looks for one particular thing in a short document. Read the explanation "
    "of what the neuron does and predict its activation on each token.\n\nThe format is "
    "token<tab>activation, activations go from 0 to 10 and most are 0. Reply with the same list "
    "between <start> and <end>, one token per line, with 'unknown' replaced by your prediction "
    "as a whole number."
)

Shot = tuple[str, list[tuple[str, int]]]

_SHOTS: list[tuple[str, list[list[tuple[str, int]]]]] = [
    (
        " the builtin range when it drives a loop or builds a sequence of numbers.",
        [
            [
                ("for", 0),
                (" i", 0),
                (" in", 0),
                (" range", 10),
                ("(", 2),
                ("len", 1),
                ("(", 0),
                ("items", 0),
                ("))", 0),
                (":", 0),
            ],
            [
                ("    ", 0),
                ("total", 0),
                (" =", 0),
                (" sum", 0),
                ("(", 0),
                ("range", 9),
                ("(", 1),
                ("10", 0),
                ("))", 0),
            ],
        ],
    ),
    (
        " the name of a function being defined, right after the def keyword.",
        [
            [("def", 0), (" load", 8), ("_", 4), ("config", 7), ("(", 0), ("path", 0), ("):", 0)],
            [
                ("    ", 0),
                ("def", 0),
                (" __", 3),
                ("init", 9),
                ("__", 2),
                ("(", 0),
                ("self", 0),
                ("):", 0),
                ("\n", 0),
            ],
        ],
    ),
]


def show_token(t: str) -> str:
    """A token on one line: newlines and tabs escaped."""
    return t.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _listing(seq: Sequence[tuple[str, int | str]]) -> str:
    return "<start>\n" + "".join(f"{show_token(t)}\t{a}\n" for t, a in seq) + "<end>\n"


def _explain_user(i: int, seqs: Sequence[Sequence[tuple[str, int]]]) -> str:
    body = "".join(_listing(s) for s in seqs)
    return f"Neuron {i}\nActivations:\n{body}\nExplanation of neuron {i} behavior: {LEAD}"


def explain_messages(seqs: Sequence[Sequence[tuple[str, int]]]) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": EXPLAIN_SYSTEM}]
    for i, (expl, shot) in enumerate(_SHOTS, 1):
        msgs.append({"role": "user", "content": _explain_user(i, shot)})
        msgs.append({"role": "assistant", "content": expl})
    msgs.append({"role": "user", "content": _explain_user(len(_SHOTS) + 1, seqs)})
    return msgs


def _simulate_user(i: int, explanation: str, tokens: Sequence[str]) -> str:
    unknown = _listing([(t, "unknown") for t in tokens])
    return (
        f"Neuron {i}\nExplanation of neuron {i} behavior: {LEAD} {explanation.strip()}\n"
        f"Tokens without activations:\n{unknown}"
    )


def simulate_messages(explanation: str, tokens: Sequence[str]) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": SIMULATE_SYSTEM}]
    for i, (expl, shot) in enumerate(_SHOTS, 1):
        seq = shot[0]
        msgs.append({"role": "user", "content": _simulate_user(i, expl, [t for t, _ in seq])})
        msgs.append({"role": "assistant", "content": _listing(seq)})
    msgs.append({"role": "user", "content": _simulate_user(len(_SHOTS) + 1, explanation, tokens)})
    return msgs


def parse_explanation(text: str) -> str | None:
    """The explanation sentence, or None when the reply is empty or unusable."""
    line = " ".join(text.strip().split())
    if line.lower().startswith(LEAD):
        line = line[len(LEAD) :].strip()
    if not line or len(line) > 1000:
        return None
    return line


def parse_simulation(text: str, n: int) -> list[float] | None:
    """The n predicted activations (0-10) in a reply, or None when it does not list n of them."""
    lines = text.splitlines()
    if "<start>" in text:
        start = next(i for i, ln in enumerate(lines) if "<start>" in ln)
        ends = [i for i, ln in enumerate(lines) if "<end>" in ln and i > start]
        lines = lines[start + 1 : ends[0] if ends else len(lines)]
    values = []
    for ln in lines:
        if not ln.strip():
            continue
        field = ln.rsplit("\t", 1)[-1] if "\t" in ln else ln.split()[-1]
        try:
            v = float(field.strip())
        except ValueError:
            return None
        values.append(min(max(v, 0.0), 10.0))
    return values if len(values) == n else None
