"""The N x N (+ LOCO) matrix of an N-corpus study: ``OUT/cross_corpus.csv`` and the report's section.

Read back from the run directories like the rest of the report (torch-free). Rows are the training sets of
:class:`~emoshift.study.cross_corpus.MatrixPlan` (one per corpus, then "all but X" per corpus), columns the
test corpora. ``cross_corpus.csv`` has one row per (training set, test corpus) cell with a score:

- ``train``: the training corpora, joined by ``+`` (``ravdess``; ``crema-d+iemocap`` for a LOCO set);
- ``test``: the test corpus;
- ``uar``: unweighted average recall (0-1) on that corpus, over the study's shared classes;
- ``ci95_low`` / ``ci95_high``: its 95% speaker-bootstrap interval (empty with fewer than 5 test speakers);
- ``speakers``: how many speakers the score is over;
- ``in_domain``: ``true`` when the model trained on the test corpus (then only its held-out test speakers are
  scored), ``false`` when the corpus was never seen (every utterance is scored);
- ``leaky``: ``true`` when a test speaker was also a training speaker (never, with speaker splits).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoshift.core.extras import optional
from emoshift.core.io import atomic_write_csv
from emoshift.core.rundir import RunDir
from emoshift.evaluation.metrics import with_ci
from emoshift.study.records import read_json, run_dir
from emoshift.study.render import Block, Bullets, Heading, Image, Para, Table, pct

if TYPE_CHECKING:
    from emoshift.study.cross_corpus import MatrixPlan, MatrixRow
    from emoshift.study.spec import Study

MATRIX_CSV = "cross_corpus.csv"
MATRIX_COLUMNS: tuple[str, ...] = (
    "train",
    "test",
    "uar",
    "ci95_low",
    "ci95_high",
    "speakers",
    "in_domain",
    "leaky",
)


def _cell(out: Path, row: MatrixRow, corpus: str) -> dict[str, Any] | None:
    """The metrics of ``row``'s run on ``corpus`` (RUN/metrics/<corpus>.json), None when not there yet."""
    run = RunDir.of(run_dir(out, row.id))
    if not run.done.is_file():
        return None
    data = read_json(run.metrics(corpus))
    return data if data is not None and "uar" in data else None


def matrix_rows(out: str | os.PathLike[str], plan: MatrixPlan) -> list[dict[str, Any]]:
    """One dict per scored cell, with :data:`MATRIX_COLUMNS` (numbers as numbers, flags as bools)."""
    rows = []
    for r in plan.rows:
        for corpus in plan.corpora:
            m = _cell(Path(out), r, corpus)
            if m is None:
                continue
            ci = (m.get("ci95") or {}).get("uar") or [None, None]
            rows.append(
                {
                    "train": "+".join(r.train),
                    "test": corpus,
                    "uar": float(m["uar"]),
                    "ci95_low": ci[0],
                    "ci95_high": ci[1],
                    "speakers": int(m.get("speakers", 0)),
                    "in_domain": corpus in r.train,
                    "leaky": bool(m.get("leaky", False)),
                }
            )
    return rows


def write_matrix_csv(out: str | os.PathLike[str], plan: MatrixPlan) -> Path:
    """``OUT/cross_corpus.csv`` (atomically): every scored cell of the matrix."""

    def text(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return f"{v:.6f}" if isinstance(v, float) else str(v)

    path = Path(out) / MATRIX_CSV
    rows = [{k: text(v) for k, v in row.items()} for row in matrix_rows(out, plan)]
    atomic_write_csv(path, MATRIX_COLUMNS, rows)
    return path


def _labels_statement(plan: MatrixPlan) -> list[Block]:
    classes = ", ".join(plan.classes) if plan.classes else f"those of policy {plan.policy!r}"
    counts = [
        f"{c}: " + ", ".join(f"{k} {n}" for k, n in sorted(plan.counts.get(c, {}).items()))
        for c in plan.corpora
    ]
    blocks: list[Block] = [
        Para(
            f"Labels: the intersection of the corpora's label policies, {plan.chosen}. Every model trains "
            f"and is scored on the same classes: {classes}; utterances of other classes are left out of "
            "training and scoring. Utterances per class under the six-class policy:"
        ),
        Bullets(counts),
    ]
    if plan.lacking:
        blocks.append(
            Para(
                "Classes of the policy a corpus does not hold (its cells are scored on the classes it has): "
                + "; ".join(f"{c}: {', '.join(v)}" for c, v in plan.lacking.items())
            )
        )
    return blocks


def matrix_blocks(out: Path, study: Study) -> list[Block]:
    """The report's "Cross-corpus matrix" section for an N-corpus study (heatmap, table, labels, protocol)."""
    plan = study.matrix
    if plan is None or not plan.rows:  # a benchmark holding out only some corpora has no full matrix
        return []
    n = len(plan.corpora)
    loco = [r for r in plan.rows if r.kind == "loco"]
    blocks: list[Block] = [
        Heading(f"Cross-corpus matrix: {n} corpora (UAR)"),
        Para(
            f"Rows: one model per corpus{' and one per leave-one-corpus-out set' if loco else ''}; columns: the "
            "test corpus. In-domain cells (the model trained on that corpus; marked ◆) score its held-out test "
            "speakers (speaker split, no speaker in both train and test); all other cells score every "
            "utterance of a corpus the model never saw. 95% speaker-bootstrap intervals in brackets."
            + (
                ""
                if loco or n >= 3
                else " With two corpora a leave-one-out set is the other corpus: no LOCO rows."
            )
        ),
        *_labels_statement(plan),
    ]
    cells = {(r.id, c): _cell(out, r, c) for r in plan.rows for c in plan.corpora}
    if not any(cells.values()):
        return [*blocks, Para("No run of this study has been evaluated yet.")]
    labels = [r.label for r in plan.rows]
    values = [[(cells[(r.id, c)] or {}).get("uar") for c in plan.corpora] for r in plan.rows]
    images: list[Block] = []
    if optional("plots", "the report's figures"):
        from emoshift.evaluation.plots import plot_heatmap

        image = plot_heatmap(
            values,
            labels,
            list(plan.corpora),
            out / "plots" / "cross_corpus_matrix.png",
            title=f"UAR: training set x test corpus ({plan.policy} classes)",
            fmt=".2f",
            xlabel="test corpus",
            ylabel="training set",
        )
        images.append(Image(image, "cross-corpus matrix heatmap"))
    rows = []
    for r in plan.rows:
        row = [r.label]
        for c in plan.corpora:
            m = cells[(r.id, c)]
            if m is None:
                row.append("–")
                continue
            text = with_ci(float(m["uar"]), (m.get("ci95") or {}).get("uar"), number=pct)
            row.append(text + (" ◆" if c in r.train else "") + (" !" if m.get("leaky") else ""))
        rows.append(row)
    blocks += [*images, Table(["training set", *plan.corpora], rows)]
    blocks += _summary(plan, cells)
    return blocks


def _summary(plan: MatrixPlan, cells: dict[tuple[str, str], dict[str, Any] | None]) -> list[Block]:
    """Per corpus: in-domain UAR, the best single other corpus, and the LOCO model (all the others)."""
    single = {r.train[0]: r for r in plan.rows if r.kind == "single"}
    loco = {r.held_out: r for r in plan.rows if r.kind == "loco"}

    def uar(row_id: str, corpus: str) -> float | None:
        m = cells.get((row_id, corpus))
        return float(m["uar"]) if m else None

    out = []
    for c in plan.corpora:
        others = [(uar(single[o].id, c), o) for o in plan.corpora if o != c]
        scored = [(u, o) for u, o in others if u is not None]
        best = max(scored) if scored else None
        out.append(
            [
                c,
                pct(uar(single[c].id, c)),
                f"{pct(best[0])} ({best[1]})" if best else "–",
                pct(uar(loco[c].id, c)) if c in loco else "–",
            ]
        )
    return [
        Para("Per test corpus: in-domain, the best model trained on one other corpus, and the LOCO model."),
        Table(["test corpus", "in-domain", "best other corpus", "all others (LOCO)"], out),
    ]


def matrix_paths(out: str | os.PathLike[str], study: Study) -> dict[str, Path]:
    """Write ``cross_corpus.csv`` for an N-corpus study; ``{"cross_corpus": path}`` (empty for other studies)."""
    plan = getattr(study, "matrix", None)
    return {"cross_corpus": write_matrix_csv(out, plan)} if plan is not None else {}


__all__ = ["MATRIX_COLUMNS", "MATRIX_CSV", "matrix_blocks", "matrix_paths", "matrix_rows", "write_matrix_csv"]
