"""Speaker groups for the audits (categorical and dimensional): parsing ``--by``, age bands, each speaker's
group, the checks both audits share, and the run files they (and compare) read and write: a run's predictions
on a corpus (evaluated first when missing), its leak flag. A speaker's demographics are the speaker's, not an
utterance's."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_text
from emoshift.core.rundir import RunDir
from emoshift.corpora import resolve_name
from emoshift.corpora.sources import source_of

BY_KEYS: tuple[str, ...] = ("gender", "age_band", "race", "ethnicity")
DEFAULT_BY: tuple[str, ...] = ("gender", "age_band")
MIN_SPEAKERS = 3
UNKNOWN = "unknown"


class AuditError(EmoshiftError, ValueError):
    """The audit cannot be done as asked (message is one line, for the user)."""


# --------------------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------------------


_META_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_by(text: str | Sequence[str], *, known: Iterable[str] | None = None) -> list[str]:
    """``"gender,age_band,accent"`` -> ``["gender", "age_band", "accent"]``.

    :data:`BY_KEYS` always parse; any other key names a metadata column of the corpus (a manifest's
    ``accent``, IEMOCAP's ``mode``): it must look like a column name, and when ``known`` (the keys the corpus
    carries) is given, be one of them."""
    items = text.split(",") if isinstance(text, str) else list(text)
    keys = [k.strip().lower().replace("-", "_") for k in items if k.strip()]
    keys = ["age_band" if k == "age" else k for k in keys]
    allowed = None if known is None else {*BY_KEYS, *known}
    bad = [k for k in keys if k not in BY_KEYS and (not _META_KEY.match(k) or (allowed is not None and k not in allowed))]
    if bad or not keys:
        choices = ", ".join([*BY_KEYS, *sorted(set(known or ()) - set(BY_KEYS))])
        raise AuditError(f"unknown audit grouping {bad or text!r}; choose from {choices}")
    return list(dict.fromkeys(keys))


def parse_age_bands(text: str | Sequence[int] | None) -> list[int] | None:
    """Lower edges of the age bands, e.g. ``"20,35,50"`` -> bands 20-34, 35-49, 50+ (and "<20" below).

    None means decades (20-29, 30-39, ...).
    """
    if text is None:
        return None
    try:
        edges = [int(x) for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip()]
    except ValueError:
        raise AuditError(
            f"age bands must be comma-separated whole years, e.g. 20,35,50; got {text!r}"
        ) from None
    if not edges or sorted(set(edges)) != edges or edges[0] < 0:
        raise AuditError(f"age band edges must be increasing non-negative years, got {text!r}")
    return edges


def age_band(age: int | float | None, edges: Sequence[int] | None = None) -> str | None:
    """The band an age falls in: decades by default ("20-29"), else by the lower ``edges``."""
    if age is None:
        return None
    age = int(age)
    if edges is None:
        lo = age // 10 * 10
        return f"{lo}-{lo + 9}"
    if age < edges[0]:
        return f"<{edges[0]}"
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= age < hi:
            return f"{lo}-{hi - 1}"
    return f"{edges[-1]}+"


def _band_order(name: str) -> tuple[int, int, str]:
    """Sort age bands numerically ("<20" < "20-29" < "60+"), other names alphabetically, unknown last."""
    if name == UNKNOWN:
        return (2, 0, name)
    m = re.match(r"^(<)?(\d+)", name)
    if m:
        return (0, int(m.group(2)) - (1 if m.group(1) else 0), name)
    return (1, 0, name)


def _value(key: str, demo: Mapping[str, Any], edges: Sequence[int] | None) -> str | None:
    if key == "age_band":
        return age_band(demo.get("age"), edges)
    value = demo.get(key)
    if value is None or not str(value).strip():
        return None
    return str(value).strip().lower()


def demographics_from_utterances(utterances: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """utterance id -> {speaker, gender, age, race, ethnicity, language, and the corpus's metadata columns}
    from scanned ``Utterance`` records (a manifest's ``accent`` can be audited like gender)."""
    return {
        u.id: {
            **dict(getattr(u, "meta", ()) or ()),
            "speaker": u.speaker,
            "gender": u.gender,
            "age": u.age,
            "race": u.race,
            "ethnicity": u.ethnicity,
            "language": getattr(u, "language", None),
        }
        for u in utterances
    }


def speaker_groups(
    key: str, rows: Sequence[Mapping[str, Any]], values: Sequence[str | None]
) -> tuple[dict[str, str], dict[str, list[Mapping[str, Any]]]]:
    """(speaker -> group, group -> its rows, groups in report order) for grouping ``key``.

    Demographics belong to speakers: a speaker's group is its one recorded value ("unknown" if none)."""
    recorded: dict[str, set[str]] = {}
    for row, value in zip(rows, values, strict=True):
        recorded.setdefault(row["speaker"], set()).update([value] if value else [])
    speaker_group: dict[str, str] = {}
    for speaker, found in recorded.items():
        if len(found) > 1:
            raise AuditError(f"speaker {speaker} has several {key} values ({', '.join(sorted(found))})")
        speaker_group[speaker] = found.pop() if found else UNKNOWN
    members: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        members.setdefault(speaker_group[row["speaker"]], []).append(row)
    order = sorted(members, key=_band_order if key == "age_band" else lambda n: (n == UNKNOWN, n))
    return speaker_group, {name: members[name] for name in order}


def size_notes(key: str, groups: Mapping[str, Mapping[str, Any]], min_speakers: int) -> list[str]:
    """Why some groups (too few speakers, ``unknown``) are reported but not compared."""
    notes: list[str] = []
    small = [g for g, r in groups.items() if r["too_small"]]
    if small:
        notes.append(
            f"fewer than {min_speakers} speakers in {', '.join(small)}: reported, not compared (gap, ratio, p-value)"
        )
    if UNKNOWN in groups:
        notes.append(
            f"{groups[UNKNOWN]['speakers']} speakers whose {key.replace('_', ' ')} is not recorded (or recorded as "
            "unknown) form the group 'unknown': reported, not compared"
        )
    return notes


def check_audit(
    rows: Sequence[Mapping[str, Any]],
    demographics: Mapping[str, Mapping[str, Any]],
    by: Sequence[str],
    age_bands: Sequence[int] | None,
    counts: tuple[int, int, int],
) -> tuple[list[str], list[int] | None, list[str]]:
    """Checks shared by both audits -> (groupings, age-band edges, notes); ``counts`` are (min_speakers,
    n_resamples, n_permutations)."""
    if not rows:
        raise AuditError("no predictions to audit")
    for name, value in zip(("min_speakers", "n_resamples", "n_permutations"), counts, strict=True):
        if value < 1:
            raise AuditError(f"{name} must be at least 1, got {value}")
    carried = {k for demo in demographics.values() for k, v in demo.items() if v not in (None, "")}
    keys = parse_by(by, known=carried - {"speaker"})
    edges = parse_age_bands(age_bands)
    matched = sum(1 for r in rows if r["id"] in demographics)
    if matched == 0:
        example = next(iter(demographics), "none")
        raise AuditError(
            f"none of the {len(rows)} predictions matches an utterance of the corpus "
            f"(prediction ids look like {rows[0]['id']!r}, corpus ids like {example!r})"
        )
    notes: list[str] = []
    if matched < len(rows):
        notes.append(f"{len(rows) - matched} predictions have no demographic record in the corpus scan")
    return keys, edges, notes


def group_values(
    key: str,
    rows: Sequence[Mapping[str, Any]],
    demographics: Mapping[str, Mapping[str, Any]],
    edges: Sequence[int] | None,
) -> list[str | None]:
    """Each row's group under ``key`` (None where not recorded)."""
    values = []
    for r in rows:
        demo = dict(demographics.get(r["id"], {}))
        if key == "gender" and not demo.get("gender") and r.get("gender"):
            demo["gender"] = r["gender"]  # the predictions file carries gender too
        values.append(_value(key, demo, edges))
    return values


def gap_verdict(head: str, p: float, floor: float | None, alpha: float, worse: str) -> str:
    """The end of a group-gap verdict sentence, shared by the categorical and dimensional audits: ``head``
    (what ranges from what, with its permutation p) and whether that gap is beyond chance; ``worse`` is the
    clause said when it is (``"the model serves male speakers worse"``)."""
    if p < alpha:
        return head + f": larger than chance; {worse}."
    if floor is not None and floor >= alpha:
        return head + (
            f": too few speakers for this test to reach p < {alpha:g} (smallest possible p = {floor:.3f}), "
            "so this is not evidence either way."
        )
    return head + f": consistent with chance at the {alpha:.0%} level (no evidence of a group difference)."


def audit_sections(
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    demographics: Mapping[str, Mapping[str, Any]],
    edges: Sequence[int] | None,
    audit_one: Callable[..., dict[str, Any]],
    *,
    gap: str,
    corpus: str,
    seed: int,
    n_resamples: int,
    n_permutations: int,
    min_speakers: int,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """An audit report's ``settings`` and ``by`` blocks, shared by both audits. ``by``: one section per grouping,
    ``audit_one(key, rows, each row's group, corpus=..., seed=..., n_resamples=..., n_permutations=...,
    min_speakers=...)``; an :class:`AuditError` when the corpus records none of ``keys``. ``gap`` names the score
    whose largest gap between groups the permutation test is of."""
    settings = {
        "seed": seed,
        "n_resamples": n_resamples,
        "n_permutations": n_permutations,
        "min_speakers": min_speakers,
        "age_bands": list(edges) if edges is not None else "decades",
        "ci": "95% percentile bootstrap over speakers",
        "p_value": f"permutation test over speakers of the largest {gap} gap between compared groups",
    }
    where = corpus or "the corpus"
    options = {"seed": seed, "n_resamples": n_resamples, "n_permutations": n_permutations, "min_speakers": min_speakers}
    by = {key: audit_one(key, rows, group_values(key, rows, demographics, edges), corpus=where, **options)
          for key in keys}
    if not any(section["available"] for section in by.values()):
        raise AuditError(f"{where} records none of {', '.join(keys)}; nothing to audit")
    return settings, by


def fmt(value: float | None, digits: int = 3) -> str:
    """A score in a report table ("–" when undefined)."""
    return "–" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------------------
# The run files both audits (and compare) read and write
# --------------------------------------------------------------------------------------------------------


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically (temp file in the same folder, then rename); returns ``path``."""
    atomic_write_text(path, text)
    return path


def read_leaky(run_dir: Path, corpus: str) -> bool | None:
    """``leaky`` from RUN/metrics/<corpus>.json (None when unknown): were test speakers seen in training?"""
    path = RunDir.of(run_dir).metrics(corpus)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("leaky")
    except (json.JSONDecodeError, AttributeError):
        return None
    return bool(value) if value is not None else None


def predictions_for(run_dir: str | os.PathLike[str], name: str, root: str) -> tuple[Path, str]:
    """(RUN/predictions/<corpus>.csv, canonical corpus name), evaluating the run on the corpus first if the
    file is missing (``emoshift.evaluation.evaluate.evaluate_run``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"run directory not found: {run_dir}")
    try:
        corpus = resolve_name(name, root)  # a manifest table names a corpus of its own
    except KeyError as e:
        raise AuditError(str(e.args[0])) from None
    missing = source_of(root).missing()  # checked even when predictions exist: a mistyped ROOT is never ignored
    if missing:
        raise AuditError(f"{name}: {root}: {missing}")
    run = RunDir.of(run_dir)
    candidates = [run.predictions(corpus), run.predictions(name)]
    for path in candidates:
        if path.is_file():
            return path, corpus
    try:
        evaluate = importlib.import_module("emoshift.evaluation.evaluate")
    except ModuleNotFoundError as e:
        if e.name != "emoshift.evaluation.evaluate":
            raise
        raise AuditError(
            f"{run_dir} has no predictions/{corpus}.csv and this install cannot evaluate"
        ) from None
    evaluate.evaluate_run(run_dir, {corpus: root})
    for path in candidates:
        if path.is_file():
            return path, corpus
    raise AuditError(f"evaluating {run_dir} on {corpus} wrote no predictions/{corpus}.csv")
