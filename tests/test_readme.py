"""Every ``emoshift`` command in the README's bash blocks runs as written, in order, on the synthetic corpus.

The commands are read from README.md itself, so an example that stops working (a flag renamed, a file that
does not exist, ``compare`` refusing the README's own runs) fails here. What a reader brings is made in the
working folder first: ``data/`` (the session's tiny synthetic corpus), ``clip.wav``, ``more_clips/``, ``long.wav``,
``my_corpus.csv`` (a table in nkululeko's columns with its own label ``ang``) and ``space.yaml`` (the README's own
YAML block). Four things are changed to keep the suite lean, and only these: training is made tiny (``--set``
overrides and ``--epochs 1`` appended, as a user may; no figures but ``predict --plot``'s), ``synth`` writes the
tiny scale, ``tune`` runs 2 trials and ``study`` one phase under the demo profile: L2b, one CNN (2 folds, one
channel: 13 s on a core, where the eGeMAPS baseline L0 took 30 s of openSMILE on the clips and their telephone
copies; tests/study runs every phase). What cannot run in a test is listed in :data:`NOT_RUN` with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

README = Path(__file__).resolve().parents[1] / "README.md"
CONFIGS = README.parent / "configs"

# command substring -> why the test does not run it
NOT_RUN: dict[str, str] = {
    "emoshift serve": "a server that runs until stopped (tests/deploy start it in-process)",
    "--profile paper": "the paper profile is for the real corpora (HuBERT weights from the Hugging Face hub)",
    "--launcher slurm": "needs a SLURM cluster",
    "hf:": "a Hugging Face dataset on disk (tests/corpora build one with the datasets library)",
    "lhotse:": "lhotse manifests (tests/corpora build them with lhotse)",
}
TINY = [
    "features.n_mels=32",
    "features.crop_s=1.0",
    "model.width_mult=0.125",
    "training.batch_size=16",
    "training.early_stopping_patience=null",
    "evaluation.n_bootstrap=100",
    "evaluation.figures=false",
    "trainer.progress=false",
]
SYNTH_EMOTION = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "ang", "06": "fearful",
                 "07": "disgust", "08": "surprised"}


def readme_commands() -> list[tuple[int, str]]:
    """(README line, command) for every ``emoshift`` line of a bash block, continuations joined, comments off."""
    lines = README.read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, str]] = []
    in_bash, pending, start = False, "", 0
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash" and not in_bash
            continue
        if not in_bash:
            continue
        if not pending:
            start = number
        pending += line.rstrip().removesuffix("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        text, pending = " ".join(shlex.split(pending, comments=True)), ""
        if text.startswith("emoshift "):
            out.append((start, text))
    return out


def as_run(command: str, home: Path) -> list[str] | None:
    """The argument list the test runs for a README command (None: not run, see NOT_RUN)."""
    if any(key in command for key in NOT_RUN):
        return None
    command = re.sub(r"\s*\[[^\]]*\]", "", command)  # an optional part shown as [--quantize int8]
    command = command.replace("/data/RAVDESS", "data/ravdess").replace("/data/CREMA-D", "data/crema-d")
    args = [os.path.expanduser(a) if a.startswith("~") else a for a in shlex.split(command)][1:]
    assert str(home) in os.path.expanduser("~")
    if args[0] == "synth":
        args = [a if a != "small" else "tiny" for a in args]
    if args[0] in ("train", "tune"):
        args += [x for s in TINY for x in ("--set", s)] + ["--epochs", "1"]
    if args[0] == "tune":
        args += ["--trials", "2"]
    if args[0] == "study":
        args += ["--only", "L2b", "--profile", "demo", "--set", "evaluation.n_bootstrap=100"]
    return args


def _readers_files(work: Path, data: Path) -> None:
    """What the README assumes the reader has: their corpora, clips, a table of their own, a search space."""
    (work / "data").symlink_to(data, target_is_directory=True)
    (work / "configs").symlink_to(CONFIGS, target_is_directory=True)
    clips = sorted((data / "crema-d" / "AudioWAV").glob("*.wav"))
    shutil.copy(clips[0], work / "clip.wav")
    (work / "more_clips").mkdir()
    for c in clips[1:3]:
        shutil.copy(c, work / "more_clips" / c.name)
    takes = [sf.read(str(c), dtype="float32") for c in clips[3:9]]
    sf.write(str(work / "long.wav"), np.concatenate([w for w, _ in takes]), takes[0][1])
    rows = ["file,speaker,gender,emotion"]
    for wav in sorted((data / "ravdess").glob("Actor_*/*.wav")):
        actor = int(wav.parent.name.split("_")[1])
        rows.append(f"{wav},{actor},{'male' if actor % 2 else 'female'},{SYNTH_EMOTION[wav.name.split('-')[2]]}")
    (work / "my_corpus.csv").write_text("\n".join(rows) + "\n")
    text = README.read_text(encoding="utf-8")
    space = re.search(r"```yaml\n(# space\.yaml.*?)```", text, re.S)
    assert space, "the README's space.yaml block"
    (work / "space.yaml").write_text(space.group(1))


def test_the_readme_parses_into_commands() -> None:
    commands = [c for _, c in readme_commands()]
    assert any(c.startswith("emoshift compare runs/generalist runs/specialist") for c in commands)
    assert not [c for c in commands if "configs/my.yaml" in c], "configs/my.yaml does not exist"
    for _, c in readme_commands():
        for path in re.findall(r"configs/\S+\.yaml", c):
            assert (README.parent / path).is_file(), f"{path} in {c!r}"


@pytest.mark.slow
def test_every_readme_command_runs_as_written(
    synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache: Path
) -> None:
    from emoshift.cli import app

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("EMOSHIFT_CACHE", raising=False)  # the default cache, ~/.cache/emoshift, as a reader's
    # but the graphs other tests' exports traced (emoshift.deploy.traced): `emoshift export` puts its weights in one
    (shared_cache / "graphs").mkdir(exist_ok=True)
    (home / ".cache" / "emoshift").mkdir(parents=True)
    (home / ".cache" / "emoshift" / "graphs").symlink_to(shared_cache / "graphs", target_is_directory=True)
    _readers_files(work, synth_tiny)
    monkeypatch.chdir(work)
    runner = CliRunner()
    ran = []
    for line, command in readme_commands():
        args = as_run(command, home)
        if args is None:
            continue
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"README.md:{line}: {command}\n{result.output}"
        assert "Traceback" not in result.output, f"README.md:{line}: {command}\n{result.output}"
        ran.append(args[0])
        if args[0] == "compare":  # issue 24: the generalist scored CREMA-D's test speakers, the specialist all
            assert "paired on the" in result.output and "scored by specialist alone left out" in result.output
    assert {"synth", "corpus", "features", "train", "evaluate", "predict", "export", "audit", "compare", "study",
            "tune"} <= set(ran)
