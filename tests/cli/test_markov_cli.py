"""`lenscope markov`: the seed's baby GPT, loaded tiny models, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lenscope import load_model, save_model
from lenscope.cli.main import app
from lenscope.errors import InputError
from lenscope.train.baby import BabySettings, build_baby
from tests.circuits.models import random_model

runner = CliRunner()
SEQ = "111101111011110"


def brute_probs(model: torch.nn.Module, V: int, C: int) -> np.ndarray:
    """Next-token probabilities of every full context, one forward per context."""
    rows = []
    for value in range(V**C):
        ctx = [(value // V ** (C - 1 - i)) % V for i in range(C)]
        with torch.no_grad():
            logits = model(torch.tensor([ctx]))[0, -1].double()
        rows.append(torch.softmax(logits, -1).numpy())
    return np.array(rows)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("markov")
    args = ["markov", "--train", SEQ, "--steps", "50", "--out", str(d / "out")]
    res = runner.invoke(app, [*args, "--save", str(d / "baby"), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), d


def test_seed_run_json(seed_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    data, d = seed_run
    assert (data["V"], data["C"], data["steps"], data["seed"]) == (2, 3, 50, 1337)
    assert data["n_params"] == 12656
    assert data["initial"]["states"] == ["000", "001", "010", "011", "100", "101", "110", "111"]
    init = build_baby(BabySettings(steps=50))
    probs = brute_probs(init, 2, 3)
    np.testing.assert_allclose(data["initial"]["next_token_probs"], probs, atol=1e-6)
    trained = load_model(d / "baby")
    probs = brute_probs(trained, 2, 3)
    np.testing.assert_allclose(data["trained"]["next_token_probs"], probs, atol=1e-6)
    windows = [SEQ[i : i + 3] for i in range(len(SEQ) - 3)]
    assert sorted(data["empirical"]["seen_states"]) == sorted(set(windows))
    stationary = np.array(data["trained"]["stationary"])
    P = np.zeros((8, 8))
    for s, (p0, p1) in enumerate(data["trained"]["next_token_probs"]):
        P[s, (2 * s) % 8] += p0
        P[s, (2 * s + 1) % 8] += p1
    np.testing.assert_allclose(stationary @ P, stationary, atol=1e-10)
    names = sorted(Path(f).name for f in data["files"])
    assert names == sorted(f"{s}.{e}" for s in ("init", "trained") for e in ("dot", "svg", "png"))
    trained_dot = (d / "out" / "trained.dot").read_text()
    p = data["trained"]["next_token_probs"][5][1]  # state 101, token 1 -> 011
    assert f'"101" -> "011" [label="1({100 * p:.0f}%)"' in trained_dot


def test_seed_run_text_and_loaded_model(seed_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    data, d = seed_run
    res = runner.invoke(app, ["markov", str(d / "baby"), "--train", SEQ, "--out", str(d / "m")])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "state  seen  n  model %  data %  TV" in text
    assert "000    no    0" in text and "111    yes   6" in text
    assert "recurrent class (period 1)" in text and "stationary distribution" in text
    assert "transient states: none" in text
    res = runner.invoke(app, ["markov", str(d / "baby"), "--json", "--out", str(d / "m")])
    loaded = json.loads(res.stdout)
    np.testing.assert_allclose(
        loaded["trained"]["next_token_probs"], data["trained"]["next_token_probs"], atol=1e-7
    )


def test_short_states_other_vocab_and_id_sequences(tmp_path: Path) -> None:
    args = ["markov", "--train", "0 2 1 2 0 1 2", "--steps", "3", "--context", "2"]
    res = runner.invoke(app, [*args, "--include-short", "--json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["V"] == 3 and len(data["trained"]["states"]) == 3 + 9
    kinds = {c["kind"] for c in data["trained"]["classes"]}
    assert kinds == {"transient", "recurrent"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train", "11a1"], "symbol 'a' at position 2"),
        (["--train", "0120", "--vocab", "2"], "symbol 2 at position 2"),
        (["--train", "0101", "--vocab", "20", "--context", "3"], "too big for the Markov view"),
        (["--train", ""], "empty"),
        (["--train", "01", "--steps", "1"], "more than the context"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["markov", *args, "--out", str(tmp_path)])
    assert isinstance(res.exception, InputError), res.output
    assert message in str(res.exception) and "\n" not in str(res.exception)


def test_loaded_model_errors(tmp_path: Path) -> None:
    big = tmp_path / "big"
    save_model(random_model(1, "LN"), big)  # vocab 40, context 16
    res = runner.invoke(app, ["markov", str(big), "--out", str(tmp_path)])
    assert isinstance(res.exception, InputError)
    assert "V^C = 40^16" in str(res.exception)
    res = runner.invoke(
        app, ["markov", str(big), "--context", "2", "--json", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert "last 2 of 16" in data["note"] and len(data["trained"]["states"]) == 1600
    assert [Path(f).suffix for f in data["files"]] == [".dot"]  # too many states to draw
    res = runner.invoke(app, ["markov", str(big), "--vocab", "3", "--out", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "vocabulary of 40" in str(res.exception)
    res = runner.invoke(app, ["markov", str(big), "--context", "2", "--train", "0 41 1"])
    assert isinstance(res.exception, InputError) and "symbol 41" in str(res.exception)
