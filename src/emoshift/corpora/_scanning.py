"""The part of a scan every corpus loader shares: find the audio files, apply the label policy, decode each
kept file once (in a thread pool), and sort the results into kept utterances and skipped files.

A loader only knows its own layout and file names. It goes through three steps::

    scan, root = start_scan(NAME, root, labels)      # checks the policy and that ROOT exists
    files = audio_files(folder)                       # stray and hidden files never show up
    return scan_files(scan, files, parse)             # parse(path) -> Utterance (canonical emotion,
                                                      # no duration) or a skip reason; -> validated Scan

Decoding is the slow part (every file must be read to know its duration and to catch silent, truncated or
non-audio takes). soundfile releases the GIL while it decodes, so threads give a real speed-up.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from emoshift.core import audio
from emoshift.core.progress import progress as progress_bar
from emoshift.corpora.base import (
    CorpusError,
    Scan,
    Skipped,
    Utterance,
    check_policy,
    harmonise,
    harmonise_votes,
    validate,
)

# Folders that archive tools add next to the data (macOS zips, version control): never corpus content.
_IGNORED_DIRS = frozenset({"__macosx", ".git", ".svn"})


def start_scan(corpus: str, root: str | os.PathLike[str], labels: str) -> tuple[Scan, Path]:
    """An empty Scan for ``corpus`` and ROOT as an absolute path; fails early on a bad policy or missing ROOT."""
    check_policy(labels)
    path = Path(root).expanduser()
    if not path.exists():
        raise CorpusError(f"{corpus}: {path} does not exist")
    if not path.is_dir():
        raise CorpusError(f"{corpus}: {path} is not a folder")
    path = path.resolve()
    return Scan(corpus=corpus, root=str(path), labels=labels), path


def subdirs(folder: Path) -> list[Path]:
    """Visible child folders, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not _ignored(p.name)),
        key=lambda p: p.name,
    )


def child(folder: Path, name: str, *, is_dir: bool) -> Path | None:
    """The child folder (``is_dir``) or file called ``name``, compared case-insensitively (AudioWAV, audiowav)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    for p in entries:
        if p.name.lower() == name.lower() and (p.is_dir() if is_dir else p.is_file()):
            return p
    return None


def audio_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Audio files in ``folder`` (by extension), sorted.

    Stray files (.DS_Store, readme, .txt, .csv), hidden files (including macOS ``._name.wav`` resource
    forks) and ``__MACOSX`` folders are left out silently: they are not audio, so they are neither kept nor
    reported as skipped. A file with an audio extension is always returned, whatever its content.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d)) if recursive else []
        for name in filenames:
            if not _ignored(name) and name.lower().endswith(audio.AUDIO_EXTENSIONS):
                found.append(Path(dirpath) / name)
    return sorted(found)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in _IGNORED_DIRS


def dedupe(paths: Iterable[Path], key: Callable[[Path], str] = lambda p: p.name) -> tuple[list[Path], int]:
    """Keep one file per ``key`` (default: the file name), the shallowest copy first.

    Mirrors such as Kaggle's ship some corpora twice (RAVDESS: every actor; TESS: the whole set nested in
    itself); the copies are the same recording. Returns the kept paths and how many copies were dropped.
    """
    best: dict[str, Path] = {}
    dropped = 0
    for p in sorted(paths, key=lambda p: (len(p.parts), str(p))):
        k = key(p)
        if k in best:
            dropped += 1
        else:
            best[k] = p
    return sorted(best.values()), dropped


def duplicates_warning(dropped: int) -> str:
    return f"{dropped} files appear twice (a mirror that ships the corpus twice); one copy of each kept"


def require_recognised(
    files: Iterable[Path], parse: Callable[[Path], Utterance | str], expected: str
) -> None:
    """CorpusError(``expected``) unless at least one file name parses: ROOT does not look like the corpus."""
    if not any(isinstance(parse(f), Utterance) for f in files):
        raise CorpusError(expected)


def scan_files(
    scan: Scan,
    files: Iterable[Path],
    parse: Callable[[Path], Utterance | str],
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Parse each file name, apply the label policy, then decode the kept files (see :func:`decode_all`).

    ``parse`` returns an Utterance labelled with its *canonical* emotion and raters' votes (no duration yet) or
    the reason the file is skipped; both are harmonised here (:func:`base.harmonise_votes`). Emotions the policy leaves out are counted in ``scan.left_out`` and not decoded.
    """
    pending: list[Utterance] = []
    for path in files:
        parsed = parse(path)
        if isinstance(parsed, str):
            scan.skipped.append(Skipped(path=str(path), reason=parsed))
            continue
        label = harmonise(parsed.emotion, scan.labels)
        if label is None:
            scan.left_out[parsed.emotion] += 1
        else:
            pending.append(dataclasses.replace(parsed, emotion=label, votes=harmonise_votes(parsed.votes, scan.labels)))
    return decode_all(scan, pending, workers=workers, progress=progress)


def probe(path: str, start: float | None = None, end: float | None = None) -> float:
    """Duration in seconds of a usable take (or of its segment start..end, the only part decoded);
    AudioError (str = the skip reason) for anything else."""
    wave, sr = audio.read(path, start=start, end=end)  # (samples,) mono float32
    audio.check_long_enough(wave, sr)
    audio.check_not_silent(wave, sr)
    return len(wave) / sr


def decode_all(
    scan: Scan,
    pending: Sequence[Utterance],
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Scan:
    """Decode every pending utterance once, keep the good ones (with duration), skip the rest; validate.

    ``workers`` threads decode in parallel (None: the ThreadPoolExecutor default). One bad file never
    stops the scan: its AudioError becomes a Skipped record with the reason.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    outcomes: dict[int, float | audio.AudioError] = {}
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(len(pending), f"decoding {scan.corpus}", enabled=progress) as advance,
    ):
        futures = {pool.submit(probe, u.path, u.start, u.end): i for i, u in enumerate(pending)}
        for fut in as_completed(futures):
            try:
                outcomes[futures[fut]] = fut.result()
            except audio.AudioError as e:
                outcomes[futures[fut]] = e
            advance(1)
    for i, u in enumerate(pending):
        outcome = outcomes[i]
        if isinstance(outcome, audio.AudioError):
            scan.skipped.append(Skipped(path=u.path, reason=str(outcome)))
        else:
            scan.utterances.append(dataclasses.replace(u, duration_s=outcome))
    scan.skipped.sort(key=lambda s: s.path)
    return validate(scan)

