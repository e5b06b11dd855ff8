"""`emoshift features`: scan a corpus and fill (or refresh) its log-mel feature cache.

emoshift features ravdess /data/RAVDESS --cache ~/.cache/emoshift/features
emoshift features crema-d /data/CREMA-D --cache cache/features --workers 4 --set n_mels=64 --set trim_silence=false
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape

from emoshift.cli import app
from emoshift.cli._common import console, err_console, fail
from emoshift.corpora import LABEL_POLICIES, list_corpora

if TYPE_CHECKING:
    from emoshift.config.features import FeatureConfig
    from emoshift.corpora.base import Scan
    from emoshift.features.cache import BuildStats, FeatureStore

# At most this many skipped files are listed one by one; the rest are counted by reason.
_LIST_SKIPPED = 20


@app.command("features")
def features(
    corpus: Annotated[
        str,
        typer.Argument(
            metavar="CORPUS", help=f"Corpus name: {', '.join(list_corpora())}.", show_default=False
        ),
    ],
    root: Annotated[
        Path,
        typer.Argument(metavar="ROOT", help="Folder holding the corpus as distributed.", show_default=False),
    ],
    cache: Annotated[
        Path,
        typer.Option(
            "--cache", help="Feature cache folder (one subfolder per corpus and config).", show_default=False
        ),
    ],
    labels: Annotated[
        str, typer.Option("--labels", help=f"Label policy: {', '.join(LABEL_POLICIES)}.")
    ] = "six",
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=0, help="Decoding processes (default 2; 0 = in this process)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Feature setting, repeatable: sample_rate, n_mels, win_ms, hop_ms, n_fft, f_min, f_max, "
            "power, top_db, trim_silence, trim_top_db, crop_s (e.g. --set n_mels=64).",
        ),
    ] = None,
) -> None:
    """Extract log-mel spectrograms of every utterance of CORPUS into the cache; reuse what is up to date."""
    from emoshift.config.features import config_from_overrides
    from emoshift.core.extras import needs
    from emoshift.corpora import ScanValidationError, scan

    with needs("emoshift features"):
        from emoshift.features import logmel  # noqa: F401  (the computation needs torch: the train extra)

    cfg = config_from_overrides(settings or [])
    if not root.is_dir():
        fail(f"ROOT {root} is not a folder")
    if labels not in LABEL_POLICIES:
        fail(f"unknown label policy {labels!r}; choose one of: {', '.join(LABEL_POLICIES)}")
    try:
        result = scan(corpus, str(root), labels=labels)
    except ScanValidationError as e:  # a loader bug, not the user's input: exit 1
        fail(f"the scan is inconsistent: {e}", code=1)
    if not result.utterances:
        fail(f"no usable {result.corpus} utterances under {root} ({len(result.skipped)} files skipped)")

    from emoshift.features.cache import FeatureCache

    try:
        store = FeatureCache(cache).build(
            result.corpus, result.utterances, cfg, workers=workers, progress=err_console.is_terminal
        )
    except OSError as e:
        fail(f"cannot write the feature cache in {cache}: {e.strerror or e}", code=1)
    _print_summary(result, store, cfg)


def _print_summary(result: Scan, store: FeatureStore, cfg: FeatureConfig) -> None:
    """What the build did: extracted, reused, skipped (the first few by name), where, and how fast."""
    stats = cast("BuildStats", store.stats)  # build() always records what it did
    n_skipped = stats.skipped_new + stats.skipped_known
    console.print(
        f"[bold]{result.corpus}[/]: {len(result.utterances)} utterances: {stats.extracted} extracted, "
        f"{stats.reused} reused, {n_skipped} skipped",
        highlight=False,
        soft_wrap=True,
    )
    if result.skipped:
        kinds = ", ".join(f"{k} {n}" for k, n in result.skipped_by_reason().most_common())
        console.print(f"scan skipped {len(result.skipped)} files ({kinds})", highlight=False, soft_wrap=True)
    if store.skipped:
        console.print(f"no features for {len(store.skipped)} files:", highlight=False)
        for s in store.skipped[:_LIST_SKIPPED]:
            console.print(f"  {s.path}: {s.reason}", highlight=False, soft_wrap=True, markup=False)
        if len(store.skipped) > _LIST_SKIPPED:
            console.print(f"  ... and {len(store.skipped) - _LIST_SKIPPED} more", highlight=False)
    console.print(f"cache: {escape(str(store.path))} (config {cfg.key()})", highlight=False, soft_wrap=True)
    if stats.decoded:
        procs = f"{stats.workers} worker processes" if stats.workers > 1 else "1 process"
        timing = f"{stats.decoded} files decoded at {stats.files_per_s:.1f} files/s ({procs})"
    else:
        timing = "everything was up to date"
    console.print(f"time: {stats.seconds:.2f} s, {timing}", highlight=False)
