"""A target corpus's audio without its labels (``data.unlabelled: {NAME: ROOT}``, domain-adversarial training).

ROOT is read as ``--corpus NAME=ROOT`` reads it (:mod:`emoshift.corpora.sources`: a built-in corpus's folder, a
manifest table, ``hf:`` / ``lhotse:`` / ``audformat:``) so its utterances (segments included) and their ids are
the ones its evaluation sees; a folder under a name no loader knows is a folder of audio files (every file with
an audio extension, recursively). Either way the utterances come back label-free: :func:`label_free` copies
what locates the audio (id, path, segment, speaker) and nothing a label is made of (emotion, native code,
intensity, ratings, votes), so no code downstream can read one.
"""

from __future__ import annotations

import os
from pathlib import Path

from emoshift.corpora import list_corpora, scan_source
from emoshift.corpora._scanning import audio_files
from emoshift.corpora.base import CorpusError, Scan, Utterance, unknown_speaker
from emoshift.corpora.sources import source_of

UNLABELLED = ""  # the emotion of every label-free utterance


def label_free(u: Utterance, corpus: str) -> Utterance:
    """``u`` without anything a label is made of; its other fields read one by one (never the label ones)."""
    return Utterance(
        id=u.id, path=u.path, corpus=corpus, speaker=u.speaker, gender=u.gender, emotion=UNLABELLED,
        native_label="", duration_s=u.duration_s, start=u.start, end=u.end,
    )


def scan_unlabelled(name: str, root: str | os.PathLike[str], **options: object) -> Scan:
    """The utterances of ``root`` as target corpus ``name``, label-free; CorpusError (one line) when none.

    ``options``: the data options every scan takes (``DataConfig.scan_options``); speakers need not be known
    (the audio is never split), so a manifest without a speaker column is read as it is."""
    source = source_of(root)
    if source.kind == "folder" and name not in list_corpora():
        if not source.path.is_dir():
            raise CorpusError(f"data.unlabelled {name}: {root}: folder not found")
        files = audio_files(source.path, recursive=True)
        utts = [_file_utterance(name, source.path, f) for f in files]
        scan = Scan(name, str(source.path), "none", utts)
    else:
        labelled = scan_source(name, root, "native", **{**options, "allow_leak": True})
        scan = Scan(name, labelled.root, "none", [label_free(u, name) for u in labelled.utterances],
                    skipped=list(labelled.skipped))
    if not scan.utterances:
        raise CorpusError(f"data.unlabelled {name}: {root}: no audio found")
    return scan


def _file_utterance(name: str, folder: Path, path: Path) -> Utterance:
    stem = path.relative_to(folder).with_suffix("").as_posix()
    uid = f"{name}/{stem}"
    return Utterance(id=uid, path=str(path.resolve()), corpus=name, speaker=unknown_speaker(name, stem), gender=None,
                     emotion=UNLABELLED, native_label="")
