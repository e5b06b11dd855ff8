"""`emoshift corpus ...`: index a corpus into a manifest CSV and say what was kept, left out and skipped.

emoshift corpus index ravdess /data/RAVDESS -o manifests/ravdess.csv
emoshift corpus index crema-d /data/CREMA-D --labels four -o manifests/crema-d.csv --verbose
emoshift corpus index crema-d /data/CREMA-D --labels-from voice -o manifests/crema-d-voice.csv
emoshift corpus index manifest /data/mine/table.csv --label-map ang=angry --column path=file -o manifests/mine.csv
emoshift corpus index manifest hf:/data/my_dataset --name mine --label-map ang=angry -o manifests/mine.csv
emoshift corpus list
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from emoshift.cli import EmoshiftGroup, app
from emoshift.cli._common import console, err_console, fail
from emoshift.corpora import LABEL_POLICIES, list_corpora

if TYPE_CHECKING:
    from emoshift.corpora.base import Scan

corpus_app = typer.Typer(
    cls=EmoshiftGroup,
    help="Index emotional-speech corpora into manifest CSV files.",
    no_args_is_help=True,
)
app.add_typer(corpus_app, name="corpus")

_CORPUS_HELP = (
    f"Corpus name: {', '.join(list_corpora())}; or 'manifest' with ROOT a .csv/.jsonl table, hf:PATH (a Hugging "
    "Face dataset on disk), lhotse:PATH (lhotse manifests) or audformat:PATH (an audformat database)."
)
_LABELS_HELP = (
    f"Label policy: {', '.join(LABEL_POLICIES)}. six = the classes RAVDESS and CREMA-D share; "
    "calm-as-neutral = six, with RAVDESS calm counted as neutral; four = angry, happy, neutral, sad; "
    "native = every canonical emotion the corpus has."
)


@corpus_app.command("index")
def index(
    corpus: Annotated[str, typer.Argument(metavar="CORPUS", help=_CORPUS_HELP, show_default=False)],
    root: Annotated[
        Path,
        typer.Argument(metavar="ROOT", help="Folder holding the corpus as distributed.", show_default=False),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Manifest CSV to write (one row per kept utterance).")
    ],
    labels: Annotated[str, typer.Option("--labels", help=_LABELS_HELP)] = "six",
    include_song: Annotated[
        bool, typer.Option("--include-song", help="RAVDESS only: keep the sung takes too.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every skipped file with its reason.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Decoding threads (default: min(32, CPU cores + 4))."),
    ] = None,
    labels_from: Annotated[
        str,
        typer.Option("--labels-from", help="CREMA-D only: acted (intended emotion) or voice (crowd majority)."),
    ] = "acted",
    name: Annotated[
        str | None, typer.Option("--name", help="manifest only: the corpus name (default: the table's stem).")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--column", help="manifest only: FIELD=COLUMN, e.g. path=file (repeatable)."),
    ] = None,
    label_map: Annotated[
        list[str] | None,
        typer.Option("--label-map", help="manifest only: LABEL=EMOTION, e.g. ang=angry (repeatable)."),
    ] = None,
    allow_leak: Annotated[
        bool, typer.Option("--allow-leak", help="manifest only: accept a table without speakers (leaky).")
    ] = False,
) -> None:
    """Scan ROOT as CORPUS, write the kept utterances to a manifest CSV and print a summary."""
    from emoshift.corpora import ScanValidationError
    from emoshift.corpora.manifest import write_manifest

    name_, options = _index_options(corpus, root, include_song, labels_from, name, column, label_map, allow_leak)
    if labels not in LABEL_POLICIES:
        fail(f"unknown label policy {labels!r}; choose one of: {', '.join(LABEL_POLICIES)}")
    try:
        result = _scan_for_index(name_, root, labels, workers=workers, **options)
    except ScanValidationError as e:  # a loader bug, not the user's input: exit 1
        fail(f"the scan is inconsistent: {e}", code=1)

    print_summary(result, verbose=verbose)
    if not result.utterances:
        reasons = ", ".join(f"{k} {n}" for k, n in result.skipped_by_reason().most_common())
        left_out = sum(result.left_out.values())
        fail(
            f"nothing kept from {result.root}: {len(result.skipped)} files skipped ({reasons or 'none'}), "
            f"{left_out} left out by label policy {labels!r}; no manifest written",
            code=1,
        )
    try:
        written = write_manifest(output, result.utterances)
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}", code=1)
    console.print(
        f"wrote {len(result.utterances)} utterances to {escape(str(written))}",
        highlight=False,
        soft_wrap=True,
    )


def _index_options(
    corpus: str,
    root: Path,
    include_song: bool,
    labels_from: str,
    name: str | None,
    column: list[str] | None,
    label_map: list[str] | None,
    allow_leak: bool,
) -> tuple[str, dict[str, object]]:
    """(corpus name, loader options) for ``corpus index``; one-line errors for options that do not apply."""
    from emoshift.corpora import canonical_name, source_of

    manifest_only = {"--name": name, "--column": column, "--label-map": label_map, "--allow-leak": allow_leak}
    if corpus.strip().lower() == "manifest":
        if name is None and root.stem.lower() in list_corpora():
            fail(f"the table's name {root.stem!r} is a built-in corpus's; name this one with --name NAME")
        options: dict[str, object] = {
            "name": name or source_of(root).path.stem,  # hf:/data/mine -> mine
            "columns": _pairs(column, "--column"),
            "label_map": _pairs(label_map, "--label-map"),
            "allow_leak": allow_leak,
        }
        key = "manifest"
    else:
        try:
            key = canonical_name(corpus)
        except KeyError as e:
            fail(str(e.args[0]))
        given = [flag for flag, value in manifest_only.items() if value]
        if given:
            fail(f"{given[0]} applies to manifest only, not {key}")
        options = {}
    if include_song and key != "ravdess":
        fail(f"--include-song applies to ravdess only, not {key}")
    if include_song:
        options["include_song"] = True
    if labels_from not in ("acted", "voice"):
        fail(f"--labels-from must be acted or voice, got {labels_from!r}")
    if labels_from != "acted" and key != "crema-d":
        fail(f"--labels-from applies to crema-d only, not {key}")
    if key == "crema-d":
        options["labels_from"] = labels_from
    return key, options


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _scan_for_index(corpus: str, root: Path, labels: str, **options: object) -> Scan:
    from emoshift.corpora import get_corpus, scan_source, source_of, table

    progress = err_console.is_terminal
    if corpus == "manifest" and source_of(root).kind in ("hf", "lhotse", "audformat"):
        from emoshift.config import default_cache_dir

        name = str(options.pop("name"))
        return scan_source(
            name, root, labels, progress=progress, cache_dir=default_cache_dir(), spelling=table.FLAGS, **options
        )
    if corpus == "manifest":  # errors name this command's flags (--column, --label-map), not config keys
        return table.scan(root, labels, progress=progress, spelling=table.FLAGS, **options)  # type: ignore[arg-type]
    return get_corpus(corpus).scan(root, labels=labels, progress=progress, **options)  # type: ignore[no-any-return]


@corpus_app.command("list")
def list_() -> None:
    """List the corpora emoshift can index, with the first line of each loader's description."""
    from emoshift.corpora import get_corpus

    names = list_corpora()
    width = max(map(len, names))
    for name in names:
        doc = (get_corpus(name).__doc__ or "").strip().splitlines()
        console.print(f"[bold]{name:<{width}}[/]  {doc[0] if doc else ''}", highlight=False, soft_wrap=True)


def print_summary(result: Scan, *, verbose: bool = False) -> None:
    """Kept utterances per emotion x gender, speakers, left out by policy, skipped by reason, warnings."""
    from rich.table import Table

    kept = result.utterances
    console.print(
        f"[bold]{result.corpus}[/]: {len(kept)} utterances kept from {escape(result.root)} (labels: {result.labels})",
        highlight=False,
        soft_wrap=True,
    )
    if kept:
        genders = sorted({u.gender or "unknown" for u in kept}, key=("male", "female", "unknown").index)
        counts = Counter((u.emotion, u.gender or "unknown") for u in kept)
        table = Table(title="kept per emotion x gender", title_justify="left")
        table.add_column("emotion")
        for g in [*genders, "total"]:
            table.add_column(g, justify="right")
        for emotion in result.label_set:
            row = [counts[emotion, g] for g in genders]
            table.add_row(emotion, *map(str, row), str(sum(row)))
        totals = [sum(counts[e, g] for e in result.label_set) for g in genders]
        table.add_row("total", *map(str, totals), str(len(kept)), style="bold")
        console.print(table)
        per_gender = Counter(u.gender or "unknown" for u in {u.speaker: u for u in kept}.values())
        split = ", ".join(f"{per_gender[g]} {g}" for g in genders)
        console.print(f"speakers: {len(result.speakers)} ({split})", highlight=False)
    if result.left_out:
        items = ", ".join(f"{e} {n}" for e, n in sorted(result.left_out.items()))
        console.print(
            f"left out by label policy {result.labels}: {sum(result.left_out.values())} ({items})",
            highlight=False,
        )
    if result.skipped:
        items = ", ".join(f"{k} {n}" for k, n in result.skipped_by_reason().most_common())
        console.print(f"skipped: {len(result.skipped)} ({items})", highlight=False, soft_wrap=True)
        if verbose:
            for s in result.skipped:
                console.print(f"  {s.path}: {s.reason}", highlight=False, soft_wrap=True, markup=False)
        else:
            console.print("  (--verbose lists each skipped file)", highlight=False)
    if result.excluded:
        items = ", ".join(f"{k} {n}" for k, n in result.excluded.most_common())
        console.print(
            f"left out by the corpus's labels: {sum(result.excluded.values())} ({escape(items)})", highlight=False
        )
    if result.leaky:
        console.print("[red]leaky:[/] speakers are not known, every score on this corpus is flagged leaky")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
