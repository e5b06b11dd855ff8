"""Which audio a run trained on, by content: a fingerprint of the decoded samples.

A speaker check cannot see the same recordings under another corpus name or path (RAVDESS files indexed again
as a manifest corpus, a copy in another folder): their speakers are named differently. The fingerprint can: it
is a 128-bit BLAKE2b of the sample rate and the decoded samples (mono, at the file's own rate, the segment only
for a manifest segment), quantised to 16 bits, so a copy, a move, a rename or a lossless re-encoding of a file
gives the same fingerprint and any edit of its samples another one.

Training records the fingerprints of its training and validation utterances in ``RUN/training_audio.json``
(:func:`record_training_audio`); evaluation counts the test utterances whose fingerprint is among them
(:func:`training_audio_among`) and flags such scores leaky. A fold ensemble's are its members' together.

Fingerprints are cached (``<cache_dir>/fingerprints.sqlite``, one row per file path, size, mtime and segment):
a file is decoded for its fingerprint once, and again only when it changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from emoshift.core import audio
from emoshift.core.io import atomic_write_json, file_fingerprint
from emoshift.core.rundir import RunDir, RunError
from emoshift.corpora.base import Utterance

ALGORITHM = "blake2b-128 of the sample rate and the decoded mono samples at 16 bits"
CACHE_FILE = "fingerprints.sqlite"


def fingerprint_audio(wave: np.ndarray, sr: int) -> str:
    """The fingerprint of decoded float samples ``(samples,)`` at rate ``sr`` (hex)."""
    pcm = np.clip(np.round(np.asarray(wave, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    h = hashlib.blake2b(digest_size=16)
    h.update(int(sr).to_bytes(4, "little"))
    h.update(pcm.tobytes())
    return h.hexdigest()


def _key(u: Utterance) -> str | None:
    """The cache key of an utterance's audio: its file (path, size, mtime) and segment; None when unreadable."""
    try:
        size, mtime = file_fingerprint(u.path)
    except OSError:
        return None
    return f"{os.path.abspath(u.path)}|{size}|{mtime}|{u.start}|{u.end}"


@contextlib.contextmanager
def _cache(cache_dir: str | os.PathLike[str] | None) -> Iterator[sqlite3.Connection | None]:
    """The fingerprint cache (None: no cache directory, or one that cannot hold it; then nothing is cached)."""
    if cache_dir is None:
        yield None
        return
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(Path(cache_dir) / CACHE_FILE, timeout=60)
        con.execute("CREATE TABLE IF NOT EXISTS fingerprints (key TEXT PRIMARY KEY, digest TEXT NOT NULL)")
    except (OSError, sqlite3.Error):
        yield None
        return
    try:
        with con:  # one transaction: committed on success
            yield con
    finally:
        con.close()


def fingerprints(utterances: Sequence[Utterance], cache_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """Utterance id -> fingerprint of its audio, from the cache or decoded; files that cannot be decoded are
    left out (evaluation and training skip them with their reasons elsewhere)."""
    out: dict[str, str] = {}
    with _cache(cache_dir) as con:
        for u in utterances:
            key = _key(u)
            if key is None:
                continue
            row = con.execute("SELECT digest FROM fingerprints WHERE key = ?", (key,)).fetchone() if con else None
            if row is not None:
                out[u.id] = str(row[0])
                continue
            try:
                wave, sr = audio.read(u.path, start=u.start, end=u.end)
            except audio.AudioError:
                continue
            out[u.id] = fingerprint_audio(wave, sr)
            if con is not None:
                con.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?)", (key, out[u.id]))
    return out


def record_training_audio(
    run: RunDir, utterances: Sequence[Utterance], cache_dir: str | os.PathLike[str] | None
) -> Path:
    """Write ``RUN/training_audio.json``: the fingerprints of the audio the run learned from."""
    digests = sorted(set(fingerprints(utterances, cache_dir).values()))
    record = {"algorithm": ALGORITHM, "utterances": len(utterances), "fingerprints": digests}
    atomic_write_json(run.training_audio, record)
    return run.training_audio


def training_audio(run: RunDir) -> set[str]:
    """The fingerprints a run (a fold ensemble: all its members) trained on; empty for runs made before they
    were recorded."""
    path = run.training_audio
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {str(d) for d in data.get("fingerprints", [])}
        except (OSError, ValueError, AttributeError) as e:
            raise RunError(f"{path} cannot be read ({type(e).__name__})") from None
    try:
        members = run.info().members if run.model_json.is_file() else None
    except RunError:
        return set()
    found: set[str] = set()
    for rel in members or []:
        found |= training_audio(RunDir.of(run.path / str(rel)))
    return found


def training_audio_among(
    run: RunDir, utterances: Sequence[Utterance], cache_dir: str | os.PathLike[str] | None
) -> list[str]:
    """The ids of ``utterances`` whose audio the run trained on (by fingerprint), whatever their corpus name
    or path."""
    seen = training_audio(run)
    if not seen or not utterances:
        return []
    return sorted(i for i, d in fingerprints(utterances, cache_dir).items() if d in seen)
