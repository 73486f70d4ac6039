"""`Records`: open a records artifact and query it through DuckDB.

One node's record reads only the row groups holding that node (tables are sorted by node id);
token search runs over the small nodes table; explanations from every explainer are joined in.
A records artifact belongs to one model: opening it with a model checks the fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from lenscope.artifacts import lenscope_home, read_manifest
from lenscope.errors import ArtifactError, InputError
from lenscope.model import HookedTransformer, fingerprint
from lenscope.records.config import RECORDS_KIND, SCHEMA_VERSION, check_node_id
from lenscope.records.explanations import explanation_tables
from lenscope.records.results import (
    Example,
    Explanation,
    Histogram,
    NodeRecord,
    QuantileBin,
    Stats,
    TokenEffect,
    TokenHit,
)

TABLES = ("nodes", "examples", "windows", "vocab")


def default_records_dir(model_name: str) -> Path:
    """Where `lenscope harvest NAME` writes: `$LENSCOPE_HOME/records/NAME`."""
    return lenscope_home() / "records" / Path(model_name).name


def find_records(model_name: str) -> Path | None:
    """The records `lenscope show NAME` reads: harvested ones, else shipped (assets/records)."""
    from lenscope.model.load import assets_dir

    for d in (default_records_dir(model_name), assets_dir() / "records" / Path(model_name).name):
        if (d / "manifest.json").is_file():
            return d
    return None


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class Records:
    """A records artifact opened for queries (each query uses its own DuckDB cursor, so one
    `Records` may serve several threads)."""

    def __init__(self, path: Path | str, model: HookedTransformer | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ArtifactError(
                f"no records at {self.path}; build them with `lenscope harvest <model>`"
            )
        self.manifest = read_manifest(self.path, RECORDS_KIND, SCHEMA_VERSION)
        prov = self.manifest.provenance
        self.model_name = str(prov.get("model", ""))
        self.fingerprint = str(prov.get("fingerprint", ""))
        if model is not None:
            fp = fingerprint(model)
            if fp != self.fingerprint:
                raise ArtifactError(
                    f"the records at {self.path} were harvested from another model "
                    f"({self.model_name}, fingerprint {self.fingerprint}) than {model.cfg.name} "
                    f"({fp}); harvest this model's records with `lenscope harvest`"
                )
        for t in TABLES:
            f = self.path / f"{t}.parquet"
            try:
                pq.read_metadata(f)
            except (OSError, ValueError) as e:
                raise ArtifactError(
                    f"{f} is missing or corrupt ({str(e).splitlines()[0]}); rebuild the records "
                    "with `lenscope harvest <model> --force`"
                ) from None
        self.con = duckdb.connect()
        self.con.execute("SET parquet_metadata_cache = true")
        for t in TABLES:
            # the small tables live in memory; examples and windows are read per query, only
            # the row groups that hold the asked-for nodes / positions
            what = "TABLE" if t in ("nodes", "vocab") else "VIEW"
            src = _q(self.path / f"{t}.parquet")
            self._run(f"CREATE {what} {t} AS SELECT * FROM read_parquet({src})")
        self.vocab: list[str] = [r[0] for r in self._sql("SELECT token FROM vocab ORDER BY id")]

    # ---- low level ------------------------------------------------------------------------------
    def _run(self, query: str) -> None:
        try:
            self.con.execute(query)
        except duckdb.Error as e:
            raise ArtifactError(
                f"the records at {self.path} cannot be read ({str(e).splitlines()[0]}); they are "
                "corrupt: rebuild them with `lenscope harvest <model> --force`"
            ) from None

    def _sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.con.cursor().execute(query, list(params)).fetchall()
        except duckdb.Error as e:
            raise ArtifactError(
                f"the records at {self.path} cannot be read ({str(e).splitlines()[0]}); rebuild "
                "them with `lenscope harvest <model> --force`"
            ) from None

    def _dicts(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cur = self.con.cursor().execute(query, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except duckdb.Error as e:
            raise ArtifactError(
                f"the records at {self.path} cannot be read ({str(e).splitlines()[0]}); rebuild "
                "them with `lenscope harvest <model> --force`"
            ) from None

    def coverage(self) -> str:
        parts = [f"{g['name']} ({g['size']} {g['kind']}s)" for g in self.manifest.data["groups"]]
        return ", ".join(parts)

    def node_ids(self) -> list[str]:
        return [r[0] for r in self._sql("SELECT node_id FROM nodes ORDER BY node_id")]

    # ---- nodes -----------------------------------------------------------------------------------
    def node(self, node_id: str) -> NodeRecord:
        """The whole record of one node; `InputError` when the id is malformed or not here."""
        return self.nodes([node_id])[0]

    def nodes(self, node_ids: Sequence[str]) -> list[NodeRecord]:
        """Records of several nodes, read together (one range of row groups), in the given order."""
        if not node_ids:
            return []
        for i in node_ids:
            check_node_id(i)
        want = set(node_ids)
        lo, hi = min(want), max(want)
        rng = "node_id >= ? AND node_id <= ?"
        rows = {
            r["node_id"]: r
            for r in self._dicts(f"SELECT * FROM nodes WHERE {rng}", [lo, hi])
            if r["node_id"] in want
        }
        missing = [i for i in node_ids if i not in rows]
        if missing:
            raise InputError(
                f"{missing[0]} is not in the records of {self.model_name}; they cover "
                f"{self.coverage()}"
            )
        ex = [
            e
            for e in self._dicts(
                "SELECT node_id, set, bin, rank, position, activation, acts, attn FROM examples "
                f"WHERE {rng} ORDER BY node_id, set, bin, rank",
                [lo, hi],
            )
            if e["node_id"] in want
        ]
        windows: dict[int, dict[str, Any]] = {}
        positions = sorted({int(e["position"]) for e in ex})
        for j in range(0, len(positions), 4096):
            listed = ",".join(str(p) for p in positions[j : j + 4096])
            for w in self._dicts(
                f"SELECT position, center, tokens, doc FROM windows WHERE position IN ({listed})"
            ):
                windows[int(w["position"])] = w
        by_node: dict[str, list[Example]] = {i: [] for i in want}
        for e in ex:
            by_node[e["node_id"]].append(self._example(e, windows))
        expl: dict[str, list[Explanation]] = {i: [] for i in want}
        for x in self._explanations(rng, [lo, hi]):
            if x.node_id in want:
                expl[x.node_id].append(x)
        return [self._record(rows[i], by_node[i], expl[i]) for i in node_ids]

    def _record(
        self, n: dict[str, Any], examples: list[Example], expl: list[Explanation]
    ) -> NodeRecord:
        rate = float(self.manifest.provenance["identity"]["config"]["sample_rate"])
        return NodeRecord(
            node_id=n["node_id"],
            kind=n["kind"],
            layer=n["layer"],
            index=n["index"],
            hook=n["hook"],
            stats=Stats(
                n["count"],
                n["mean"],
                n["var"],
                math.sqrt(max(n["var"], 0.0)),
                _num(n["skew"]),
                _num(n["kurtosis"]),
                n["density"],
                n["max"],
                n["min"],
            ),
            histogram=Histogram(n["hist_lo"], n["hist_hi"], list(n["hist"]), rate),
            top=[e for e in examples if e.set == "top"],
            random=[e for e in examples if e.set == "random"],
            quantiles=self._quantiles(n, examples),
            boosts=self._effects(n, "boost"),
            suppresses=self._effects(n, "suppress"),
            explanations=expl,
            model=self.model_name,
            fingerprint=self.fingerprint,
        )

    def _example(self, e: dict[str, Any], windows: dict[int, dict[str, Any]]) -> Example:
        w = windows.get(int(e["position"]))
        if w is None:
            raise ArtifactError(f"{self.path}: window {e['position']} is missing; rebuild")
        ids = [int(i) for i in w["tokens"]]
        return Example(
            set=e["set"],
            rank=int(e["rank"]),
            position=int(e["position"]),
            activation=float(e["activation"]),
            token_ids=ids,
            tokens=[self.vocab[i] if 0 <= i < len(self.vocab) else f"<{i}>" for i in ids],
            acts=[float(a) for a in e["acts"]],
            center=int(w["center"]),
            attn=None if e["attn"] is None else [float(a) for a in e["attn"]],
            bin=int(e["bin"]),
            doc=w["doc"] or "",
        )

    def _quantiles(self, n: dict[str, Any], examples: list[Example]) -> list[QuantileBin]:
        levels = list(self.manifest.data["quantile_levels"])
        bounds = [float(b) for b in n["quantile_bounds"]]
        out = []
        for i, lv in enumerate(levels):
            last = i + 1 == len(levels)
            out.append(
                QuantileBin(
                    lv,
                    None if last else levels[i + 1],
                    bounds[i],
                    None if last else bounds[i + 1],
                    [e for e in examples if e.set == "quantile" and e.bin == i],
                )
            )
        return out

    def _effects(self, n: dict[str, Any], side: str) -> list[TokenEffect]:
        ids, vals, srcs = n[f"{side}_ids"], n[f"{side}_values"], n[f"{side}_sources"]
        out = []
        for j, (i, v) in enumerate(zip(ids, vals, strict=True)):
            s = None if srcs is None else int(srcs[j])
            out.append(
                TokenEffect(
                    self.vocab[i], int(i), float(v), None if s is None else self.vocab[s], s
                )
            )
        return out

    # ---- explanations, search ---------------------------------------------------------------------
    def explanations(self, node_id: str | None = None) -> list[Explanation]:
        """Explanations of one node (or all nodes) from every explainer run on these records."""
        if node_id is None:
            return self._explanations("TRUE", [])
        return self._explanations("node_id = ?", [node_id])

    def _explanations(self, where: str, params: list[Any]) -> list[Explanation]:
        out: list[Explanation] = []
        for f in explanation_tables(self.path):
            q = f"SELECT * FROM read_parquet({_q(f)}) WHERE {where} ORDER BY node_id"
            for r in self._dicts(q, params):
                r["score"], r["control"] = _num(r["score"]), _num(r["control"])
                out.append(Explanation(**r))
        return out

    def search_tokens(self, token: str, where: str = "top", limit: int = 20) -> list[TokenHit]:
        """Nodes whose top-activating tokens (or boosted / suppressed output tokens) include
        `token` (compared exactly or with surrounding whitespace stripped), most matches first."""
        cols = {"top": "top_tokens", "boost": "boost_tokens", "suppress": "suppress_tokens"}
        if where not in cols:
            raise InputError(f"search where={where!r}; use one of {', '.join(cols)}")
        if limit < 1:
            raise InputError("limit must be at least 1")
        rows = self._sql(
            f"SELECT node_id, any_value(kind), any_value(max), count(*) AS m FROM "
            f"(SELECT node_id, kind, max, unnest({cols[where]}) AS t FROM nodes) "
            "WHERE t = ? OR trim(t) = trim(?) GROUP BY node_id "
            "ORDER BY m DESC, any_value(max) DESC, node_id LIMIT ?",
            [token, token, limit],
        )
        return [TokenHit(r[0], r[1], int(r[3]), float(r[2]), where) for r in rows]

    def maxima(self) -> dict[str, float]:
        """Each node's maximum activation over the harvest."""
        return {r[0]: float(r[1]) for r in self._sql("SELECT node_id, max FROM nodes")}

    def close(self) -> None:
        self.con.close()


def open_records(
    path: Path | str | None, model: HookedTransformer | None = None, model_name: str | None = None
) -> Records:
    """Open records at `path`, or the default place for `model_name`, checked against `model`."""
    if path is None:
        if model_name is None:
            raise InputError("give a records path or a model name")
        path = find_records(model_name)
        if path is None:
            raise ArtifactError(
                f"no records for {model_name} at {default_records_dir(model_name)}; build them "
                f"with `lenscope harvest {model_name}`"
            )
    return Records(path, model)
