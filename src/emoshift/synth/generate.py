"""Writing the corpora: render each planned file, write it atomically, in parallel, and mark the folder complete.

Every file is deterministic for a seed: its random generator is seeded from (seed, corpus, file name) through
numpy's SeedSequence, and speakers and recording sessions from (seed, corpus, actor), so the bytes do not
depend on the number of workers or the order files are made in (they may change with the numpy or scipy
version; :data:`SYNTH_VERSION` covers changes to the generator). Files are written atomically (temporary file
then ``os.replace``); ``OUT/.synth.json`` records scale, seed and generator version and is marked complete at
the end, so a re-run for the same (scale, seed) returns at once and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TypedDict

import numpy as np
import soundfile as sf

from emoshift.core.io import atomic_write_bytes
from emoshift.core.progress import progress as progress_bar
from emoshift.synth import iemocap, manifest
from emoshift.synth.channel import apply_channel, to_pcm16
from emoshift.synth.plan import (
    CORPORA,
    DEFAULT_CORPORA,
    DEMOGRAPHICS_COLUMNS,
    FileJob,
    SynthError,
    check_corpora,
    get_scale,
    plan,
)
from emoshift.synth.voice import synthesize_utterance

# Bump whenever the bytes written for a (scale, seed) change: a cached corpus of another version is rebuilt.
SYNTH_VERSION = 2  # 2: V/A/D annotations rated from the applied prosody (synth.annotate)
MARKER = ".synth.json"


def render(job: FileJob) -> np.ndarray:
    """The finished take for ``job`` as int16 ``(samples,)`` (what ``write_file`` stores)."""
    rng = job.rng()  # its first draws are the take's prosody (what synth.annotate rates)
    dry = synthesize_utterance(
        speaker=job.speaker,
        sentence=job.sentence,
        emotion=job.emotion,
        strength=job.strength,
        sr=job.channel.sr,
        rng=rng,
        pad_s=job.pad_s,
        max_syllables=job.max_syllables,
    )
    return to_pcm16(apply_channel(dry, job.channel, rng))


def write_file(job: FileJob) -> float:
    """Render and atomically write one file; returns its duration in seconds."""
    pcm = render(job)
    buf = io.BytesIO()
    sf.write(buf, pcm, job.channel.sr, subtype="PCM_16", format="WAV")
    atomic_write_bytes(job.path, buf.getvalue())
    return len(pcm) / job.channel.sr


def _write_chunk(jobs: list[FileJob]) -> list[float]:
    return [write_file(j) for j in jobs]


def _demographics_csv(rows: list[dict[str, object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(DEMOGRAPHICS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _read_marker(out: Path) -> dict[str, object] | None:
    try:
        data = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(out: Path, data: dict[str, object]) -> None:
    atomic_write_bytes(out / MARKER, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _marker_corpora(marker: dict[str, object]) -> list[str]:
    stored = marker.get("corpora", list(DEFAULT_CORPORA))
    return [str(c) for c in stored] if isinstance(stored, list) else []


def _existing_wavs(out: Path) -> list[Path]:
    """WAV files (and our stray temporaries) under the corpus folders."""
    found: list[Path] = []
    for sub in CORPORA:
        base = out / sub
        if base.is_dir():
            found.extend(
                p for p in base.rglob("*") if p.is_file() and (p.suffix == ".wav" or p.suffix == ".tmp")
            )
    return found


def _prepare(out: Path, marker: dict[str, object] | None, wanted: set[str], corpora: tuple[str, ...]) -> None:
    """Refuse folders that hold someone else's audio; remove our temporaries and files of another plan."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder")
    existing = _existing_wavs(out)
    if marker is None and any(p.suffix == ".wav" for p in existing):
        raise SynthError(
            f"{out} already holds audio that emoshift synth did not write (no {MARKER}); choose an empty folder"
        )
    for p in existing:
        if p.suffix == ".tmp" or str(p) not in wanted:
            p.unlink()
    if marker is not None:  # label files of a corpus this plan no longer writes
        stale = [] if "iemocap" in corpora else iemocap.label_files(out / "iemocap")
        table = out / "manifest" / manifest.TABLE
        stale += [table] if "manifest" not in corpora and table.is_file() else []
        for p in stale:
            p.unlink()
    for sub in CORPORA:  # drop folders left empty (actors of a larger scale)
        base = out / sub
        if base.is_dir():
            for d in sorted((d for d in base.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                if not any(d.iterdir()):
                    d.rmdir()


def _iter_results(chunks: list[list[FileJob]], workers: int) -> Iterator[tuple[list[FileJob], list[float]]]:
    """Write chunks in this process (workers == 1) or in a process pool, yielding as each finishes."""
    if workers == 1:
        for chunk in chunks:
            yield chunk, _write_chunk(chunk)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[list[float]], list[FileJob]] = {pool.submit(_write_chunk, c): c for c in chunks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


class SynthSummary(TypedDict):
    """What :func:`generate` returns (a plain dict at run time)."""

    out: str
    scale: str
    seed: int
    version: int
    files: dict[str, int]  # per corpus
    speakers: dict[str, int]
    audio_s: dict[str, float]  # seconds of audio per corpus
    written: int  # files written by this call (0 when cached)
    seconds: float  # wall time of this call
    cached: bool  # True: OUT already held the complete corpora for (scale, seed), nothing was done


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cached(root: Path, marker: dict[str, object] | None, jobs: list[FileJob]) -> dict[str, float] | None:
    """The recorded seconds of audio per corpus when ``root`` already holds every file of this plan, else None."""
    if marker is None or not marker.get("complete") or not all(os.path.exists(j.path) for j in jobs):
        return None
    stored = marker.get("audio_s")
    return {str(k): float(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def _write_all(
    todo: list[FileJob], durations: dict[str, float], workers: int | None, *, show: bool, desc: str
) -> None:
    """Write ``todo`` in chunks over a process pool (or here), recording each file's seconds in ``durations``."""
    n_workers = min(workers or _default_workers(), max(1, len(todo)))
    size = max(1, min(16, len(todo) // (n_workers * 6)))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    with progress_bar(len(todo), desc, enabled=show) as advance:
        for chunk, secs in _iter_results(chunks, n_workers):
            durations.update((j.path, s) for j, s in zip(chunk, secs, strict=True))
            advance(len(chunk))


def _check_args(seed: object, workers: int | None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and workers < 1:
        raise SynthError(f"workers must be at least 1, got {workers}")


def generate(
    out: str | os.PathLike[str],
    *,
    scale: str = "tiny",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    corpora: Sequence[str] = DEFAULT_CORPORA,
) -> SynthSummary:
    """Write ``out/ravdess`` and ``out/crema-d`` for (scale, seed) and return a :class:`SynthSummary`.

    ``corpora`` picks what to write, any of ravdess, crema-d, iemocap (``out/iemocap``: sessions, dialogs,
    EmoEvaluation files) and manifest (``out/manifest/manifest.csv`` and its audio); the default is the first
    two. A corpus's bytes do not depend on which others are written.

    ``workers`` processes write files in parallel (None: one per available core; 1: in this process); the
    bytes are the same either way. A complete corpus for the same (scale, seed, version) is not rewritten;
    files left by an interrupted run are kept; files of another scale or seed are replaced. A folder holding
    audio that this generator did not write is refused (SynthError).
    """
    spec = get_scale(scale)
    _check_args(seed, workers)
    wanted = check_corpora(corpora)
    started = time.perf_counter()
    root = Path(out).expanduser().resolve()
    jobs, demographics = plan(root, scale=spec.name, seed=seed, corpora=wanted)
    params: dict[str, object] = {"scale": spec.name, "seed": seed, "version": SYNTH_VERSION}
    by_corpus = {c: [j for j in jobs if j.corpus == c] for c in wanted}
    files = {c: len(js) for c, js in by_corpus.items()}

    def summary(audio_s: dict[str, float], written: int, cached: bool) -> SynthSummary:
        return SynthSummary(
            out=str(root),
            scale=spec.name,
            seed=seed,
            version=SYNTH_VERSION,
            files=files,
            speakers={c: len({j.speaker.id for j in js}) for c, js in by_corpus.items()},
            audio_s=audio_s,
            written=written,
            seconds=time.perf_counter() - started,
            cached=cached,
        )

    marker = _read_marker(root)
    same = marker is not None and all(marker.get(k) == v for k, v in params.items())
    # a marker without "corpora" was written before the choice existed: it holds the default two
    same_set = same and marker is not None and _marker_corpora(marker) == list(wanted)
    stored = _cached(root, marker, jobs) if same_set else None
    if stored is not None:
        return summary(stored, 0, True)

    _prepare(root, marker, {j.path for j in jobs}, wanted)
    root.mkdir(parents=True, exist_ok=True)
    params["corpora"] = list(wanted)
    _write_marker(root, {**params, "complete": False})
    if "crema-d" in wanted:
        atomic_write_bytes(root / "crema-d" / "VideoDemographics.csv", _demographics_csv(demographics))
    if "manifest" in wanted:
        manifest.write_table(root / "manifest", by_corpus["manifest"])
    # files left by an interrupted run of this plan are complete (written atomically): keep them
    kept = [j for j in jobs if same and os.path.exists(j.path)]
    durations = {j.path: float(sf.info(j.path).duration) for j in kept}
    todo = [j for j in jobs if j.path not in durations]
    _write_all(todo, durations, workers, show=progress, desc=f"synth {spec.name}")
    if "iemocap" in wanted:  # the EmoEvaluation files time each turn by its duration
        iemocap.write_labels(by_corpus["iemocap"], durations)

    audio_s = {c: round(sum(durations[j.path] for j in js), 3) for c, js in by_corpus.items()}
    _write_marker(root, {**params, "complete": True, "files": files, "audio_s": audio_s})
    return summary(audio_s, len(todo), False)
