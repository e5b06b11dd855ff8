"""Writing the corpora: render each planned file, write it atomically, in parallel, and mark the folder complete.

Every file is deterministic for a seed: its random generator is seeded from (seed, corpus, file name) through
numpy's SeedSequence, and speakers and recording sessions from (seed, corpus, actor), so the bytes do not
depend on the number of workers or the order files are made in (they may change with the numpy or scipy
version; :data:`SYNTH_VERSION` covers changes to the generator). Files are written atomically (temporary file
then ``os.replace``); ``OUT/.synth.json`` records, per corpus, the scale, seed and generator version it was
written for and is marked complete at the end, so a re-run for the same (scale, seed) returns at once and an
interrupted run resumes where it stopped.

Nothing is ever deleted or replaced that this generator did not write for the same plan: a corpus folder that
holds someone else's files, or our files of another scale, seed or version, is refused with one line before
anything is written; another ``corpora`` choice adds corpora beside those already there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TypedDict

import numpy as np
import soundfile as sf

from emoshift.core.cores import cores
from emoshift.core.io import atomic_write_bytes
from emoshift.core.progress import progress as progress_bar
from emoshift.synth import crowd, iemocap, manifest
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
SYNTH_VERSION = 5  # 2: V/A/D annotations rated from the applied prosody (synth.annotate); 3: CREMA-D crowd votes;
# 4: texts (IEMOCAP transcriptions, the manifest's sentence column); 5: the manifest's phone speakers G.711 coded
# The version that last changed each corpus's bytes: a corpus written by it or a later version is current (a
# change to one corpus does not make the others' folders stale).
CHANGED_IN: dict[str, int] = {"ravdess": 4, "crema-d": 4, "iemocap": 4, "manifest": 5}
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


class Record(TypedDict):
    """What ``OUT/.synth.json`` records of one corpus this generator wrote into ``OUT/<corpus>``."""

    scale: str
    seed: int
    version: int
    complete: bool  # False while (or if interrupted while) it is being written
    files: int
    audio_s: float


Params = tuple[str, int, int]  # (scale, seed, generator version)


def _read_marker(out: Path) -> dict[str, Record]:
    """What ``OUT/.synth.json`` says this generator wrote: one :class:`Record` per corpus (empty: nothing)."""
    try:
        data = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if "scale" in data:  # written before corpora were recorded one by one: one plan for all of them
        stored = data.get("corpora", list(DEFAULT_CORPORA))
        names = [str(c) for c in stored] if isinstance(stored, list) else []
        files, audio = data.get("files") or {}, data.get("audio_s") or {}
        return {
            c: Record(
                scale=str(data["scale"]),
                seed=int(data.get("seed", -1)),
                version=int(data.get("version", 0)),
                complete=bool(data.get("complete")),
                files=int(files.get(c, 0)) if isinstance(files, dict) else 0,
                audio_s=float(audio.get(c, 0.0)) if isinstance(audio, dict) else 0.0,
            )
            for c in names
        }
    corpora = data.get("corpora")
    if not isinstance(corpora, dict):
        return {}
    try:
        return {
            str(c): Record(
                scale=str(r["scale"]),
                seed=int(r["seed"]),
                version=int(r["version"]),
                complete=bool(r["complete"]),
                files=int(r["files"]),
                audio_s=float(r["audio_s"]),
            )
            for c, r in corpora.items()
        }
    except (KeyError, TypeError, ValueError):  # not a marker this generator wrote: nothing is recorded
        return {}


def _write_marker(out: Path, records: dict[str, Record]) -> None:
    data = {"corpora": {c: records[c] for c in CORPORA if c in records}}
    atomic_write_bytes(out / MARKER, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def current(corpus: str, written_by: int, version: int = SYNTH_VERSION) -> bool:
    """Whether ``corpus`` written by generator version ``written_by`` holds the bytes ``version`` writes."""
    return CHANGED_IN.get(corpus, version) <= written_by <= version


def _check_ours(root: Path, records: dict[str, Record], wanted: tuple[str, ...], params: Params) -> None:
    """Refuse, before anything is written, a corpus folder that holds files this generator did not write or
    that it wrote for another scale, seed or generator version: nothing is ever deleted or replaced."""
    if root.exists() and not root.is_dir():
        raise SynthError(f"{root} exists and is not a folder")
    for corpus in wanted:
        folder, rec = root / corpus, records.get(corpus)
        if rec is None:
            foreign = _files_under(folder)
            if foreign:
                raise SynthError(
                    f"{folder} already holds {len(foreign)} file(s) that emoshift synth did not write "
                    f"(e.g. {foreign[0].relative_to(root)}); choose another folder"
                )
        elif (rec["scale"], rec["seed"]) != params[:2] or not current(corpus, rec["version"], params[2]):
            scale, seed, version = params
            held = f"the {rec['scale']} corpus for seed {rec['seed']}"
            held += "" if current(corpus, rec["version"], version) else f" of generator version {rec['version']}"
            raise SynthError(
                f"{folder} holds {held}; emoshift synth never replaces files: choose another folder for "
                f"--scale {scale} --seed {seed} (or delete {folder} yourself)"
            )


# what atomic_open leaves when its process is killed: ".NAME.<random>.tmp" beside NAME
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")


def _remove_our_temporaries(root: Path, corpus: str, jobs: list[FileJob]) -> None:
    """Delete the temporaries an interrupted run of this generator left in ``root/corpus``: only those beside a
    file it writes there (the planned audio and the corpus's label files), never anything else."""
    ours = {Path(j.path) for j in jobs}
    for tmp in (root / corpus).rglob(".*.tmp"):
        m = _TEMPORARY.match(tmp.name)
        target = tmp.parent / m["name"] if m else None
        label = target is not None and (target.parent.name == "EmoEvaluation" or target.suffix == ".csv")
        if target is not None and (target in ours or label):
            tmp.unlink(missing_ok=True)


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


def _write_all(
    todo: list[FileJob], durations: dict[str, float], workers: int | None, *, show: bool, desc: str
) -> None:
    """Write ``todo`` in chunks over a process pool (or here), recording each file's seconds in ``durations``."""
    n_workers = min(workers or cores(), max(1, len(todo)))
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
    files left by an interrupted run are kept; corpora already written but not asked for are left as they are.
    A corpus folder holding files that this generator did not write, or wrote for another scale, seed or
    version, is refused (SynthError) before anything is written: nothing is deleted or replaced.
    """
    spec = get_scale(scale)
    _check_args(seed, workers)
    wanted = check_corpora(corpora)
    started = time.perf_counter()
    root = Path(out).expanduser().resolve()
    jobs, demographics = plan(root, scale=spec.name, seed=seed, corpora=wanted)
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

    records = _read_marker(root)
    _check_ours(root, records, wanted, (spec.name, seed, SYNTH_VERSION))
    # every file of a recorded corpus is ours and complete (written atomically): a rerun writes only what is missing
    todo = [j for j in jobs if not os.path.exists(j.path)]
    if not todo and all(records[c]["complete"] for c in wanted):
        return summary({c: records[c]["audio_s"] for c in wanted}, 0, True)

    root.mkdir(parents=True, exist_ok=True)
    for c in wanted:  # recorded before the first byte is written: whatever lands in the folder is ours
        if c in records:
            _remove_our_temporaries(root, c, by_corpus[c])
        records[c] = Record(scale=spec.name, seed=seed, version=SYNTH_VERSION, complete=False, files=0, audio_s=0.0)
    _write_marker(root, records)
    if "crema-d" in wanted:
        atomic_write_bytes(root / "crema-d" / "VideoDemographics.csv", _demographics_csv(demographics))
        crowd.write_ratings(root / "crema-d", by_corpus["crema-d"])  # processedResults/: the raters' votes
    if "manifest" in wanted:
        manifest.write_table(root / "manifest", by_corpus["manifest"])
    missing = {j.path for j in todo}
    durations = {j.path: float(sf.info(j.path).duration) for j in jobs if j.path not in missing}
    _write_all(todo, durations, workers, show=progress, desc=f"synth {spec.name} (seed {seed})")
    if "iemocap" in wanted:  # the EmoEvaluation files time each turn by its duration
        iemocap.write_labels(by_corpus["iemocap"], durations)

    audio_s = {c: round(sum(durations[j.path] for j in js), 3) for c, js in by_corpus.items()}
    for c in wanted:
        records[c] = Record(
            scale=spec.name, seed=seed, version=SYNTH_VERSION, complete=True, files=files[c], audio_s=audio_s[c]
        )
    _write_marker(root, records)
    return summary(audio_s, len(todo), False)
