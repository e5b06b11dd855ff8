"""The report's "Robustness to channels" section: each trained run's UAR clean and through each channel effect
of the study file's ``robustness:`` list (``emoshift evaluate --perturb``, :mod:`emoshift.evaluation.robustness`),
with the drop on the same utterances and its speaker-paired 95% CI. Read back from the runs'
``metrics/<corpus>@<slug>.json``; torch-free, like the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from emoshift.evaluation.metrics import with_ci
from emoshift.evaluation.robustness import robustness_rows
from emoshift.study.findings import pts
from emoshift.study.render import Block, Heading, Para, Table, pct

if TYPE_CHECKING:
    from emoshift.study.summaries import ExperimentSummary


def _cell(r: dict[str, Any]) -> str:
    """``41.2 (-8.3 [-12.0, -4.1])``: the perturbed UAR and its change from clean, in points, with the CI."""
    ci = r["uar_drop_ci95"]
    change = with_ci(-r["uar_drop"], [-ci[1], -ci[0]] if ci else None, r["speakers"], number=pts)
    return f"{pct(r['uar'])} ({change})"


def robustness_blocks(
    summaries: Sequence[ExperimentSummary], corpora: Sequence[str], specs: Sequence[str],
    title: Callable[[str], str] = str,
) -> list[Block]:
    """The section: one row per trained experiment and test corpus, one column per perturbation; nothing
    when the study asks for no perturbation and no run has any."""
    rows: list[list[str]] = []
    seen: list[str] = list(specs)
    table: list[tuple[str, str, dict[str, dict[str, Any]]]] = []
    for s in summaries:
        if not s.trains:
            continue
        for corpus in corpora:
            by_spec = {r["perturbation"]: r for r in robustness_rows(s.run, corpus)}
            if by_spec:
                seen += [p for p in by_spec if p not in seen]
                table.append((s.id, corpus, by_spec))
    if not table and not specs:
        return []
    blocks: list[Block] = [
        Heading("Robustness to channels"),
        Para(
            "UAR in % on each test corpus's scored utterances played through a channel effect before the model "
            "(the same utterances clean and perturbed), and in brackets its change from clean in points with a "
            "speaker-paired 95% CI (each speaker left out of both sides at once). Specs: "
            "`mp3:<N>k`/`opus:<N>k` codecs at N kbit/s, `telephone` (8 kHz, 300-3400 Hz, mu-law), "
            "`noise:snr=<dB>` white noise, `reverb:rt60=<s>` a simulated room, `gain:<dB>db`, `clip` (top 12 dB "
            "cut off). Each run's figure: `runs/<id>/plots/robustness_<corpus>.png`."
        ),
    ]
    if not table:
        return [*blocks, Para("No run has been scored through a perturbation yet.")]
    for eid, corpus, by_spec in table:
        clean = next(iter(by_spec.values()))
        cells = [_cell(by_spec[p]) if p in by_spec else "–" for p in seen]
        rows.append([eid, title(corpus), pct(clean["uar_clean"]), *cells])
    return [*blocks, Table(["ID", "test corpus", "clean UAR", *seen], rows)]
