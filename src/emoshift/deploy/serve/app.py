"""The prediction service: ``create_app(RUN, backend, settings)`` -> a FastAPI app (``emoshift serve`` runs it).

Routes: ``GET /`` (the page, package data), ``GET /healthz``, ``GET /v1/model`` (labels, family, training data,
protocol, metrics with CIs, fairness summary, the model card), ``GET /v1/model/card`` (README.md as markdown),
``POST /v1/predict?segments=window|vad|none&min_confidence=P`` (multipart field ``file`` or a raw ``audio/*``
body; answers ``status`` (``ok``, or ``uncertain`` when the top probability is below ``min_confidence``: then
``label`` is null), ``label``, ``probabilities``, ``duration_s``, ``segments``, or for a dimensional model ``{"arousal": ..,
"valence": .., "dominance": .., "duration_s", "segments"}`` with its trained targets) and the OpenAPI page at
``/docs``.

Every bad input is a 4xx with ``{"error": "..."}`` in plain words: unreadable or not audio 400, empty 400, too
large 413 (counted while the upload streams), unsupported type 415, an upload that does not arrive within
``upload_timeout_s`` 408, silent / no speech / too long / too short 422, busy 503 with ``Retry-After``. Inference runs in a bounded thread pool off the event loop; at most ``workers + queue``
requests are admitted at once, the rest are told to come back. With an API key set, every ``/v1`` request must
carry it (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``).

Every request is logged in one line on the ``emoshift.serve`` logger (INFO; ``emoshift serve`` prints it):
client, method, path, status, milliseconds and, for a prediction, its answer or the error given.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from emoshift.core.audio import AudioError
from emoshift.deploy.backend import Backend
from emoshift.deploy.serve.uploads import UploadError, read_upload

log = logging.getLogger("emoshift.serve")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeSettings:
    max_upload_mb: float = 25.0
    max_seconds: float = 600.0
    workers: int = 2  # inference threads
    queue: int | None = None  # requests waiting for a thread (default 4 per worker)
    api_key: str | None = None
    retry_after_s: int = 1
    upload_timeout_s: float = 60.0  # the whole body must arrive within this: a stalled client cannot hold a slot
    speech_check: bool = True  # no speech found by the VAD: 422 "no speech" instead of a label

    @property
    def admitted(self) -> int:
        return self.workers + (self.queue if self.queue is not None else 4 * self.workers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def audio_status(err: AudioError) -> int:
    """422 for audio that decodes but cannot be scored (silent, no speech, too long or short); 400 for the rest."""
    reason = str(err)
    return 422 if reason.startswith(("silent", "no speech", "too long", "too short")) else 400


class _Gate:
    """Admission control: at most ``limit`` requests inside; the rest get 503 at once (no unbounded queue)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.inside = limit, 0

    def enter(self) -> bool:
        if self.inside >= self.limit:
            return False
        self.inside += 1  # the event loop is single-threaded: no lock needed
        return True

    def leave(self) -> None:
        self.inside -= 1


def _page() -> str:
    return (resources.files("emoshift.deploy.serve") / "static" / "index.html").read_text(encoding="utf-8")


def _card(run: Path) -> str:
    from emoshift.evaluation.modelcard import README, render_model_card

    path = run / README
    return path.read_text(encoding="utf-8") if path.is_file() else render_model_card(run)


def _model_info(run: Path, backend: Backend) -> dict[str, Any]:
    from emoshift.evaluation.modelcard import model_summary

    return {**model_summary(run), "backend": backend.name, "members": backend.meta.members, "card": _card(run)}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:])}: {e.get('msg', '')}" for e in exc.errors()]
        return _error(400, "bad request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error: the server failed on this request (see its log)")


def _install_access_log(app: FastAPI) -> None:
    """One INFO line per request on ``emoshift.serve``: client, method, path, status, ms and the route's note."""

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        note = getattr(request.state, "note", "")
        client = request.client.host if request.client else "-"
        log.info("%s %s %s %d %.0f ms%s", client, request.method, request.url.path, response.status_code,
                 1000 * (time.perf_counter() - started), f" {note}" if note else "")
        return response


def _answer_note(result: dict[str, Any], size: int) -> str:
    """A prediction in the request log: bytes, seconds and the label (or a dimensional model's values)."""
    answer = result.get("label") or ("uncertain" if result.get("status") == "uncertain" else None) or ", ".join(f"{k} {v:.2f}" for k, v in result.items()
                                               if isinstance(v, float) and k != "duration_s")
    return f"{size} bytes, {result['duration_s']:.1f} s -> {answer}"


def _bad_query(segments: str, min_confidence: float | None, backend: Backend, modes: Sequence[str]) -> str | None:
    """What is wrong with a prediction's query parameters, in words (None: nothing)."""
    if segments not in modes:
        return f"segments must be one of {', '.join(modes)}, got {segments!r}"
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        return f"min_confidence must lie between 0 and 1, got {min_confidence:g}"
    if min_confidence is not None and backend.meta.targets:
        return "min_confidence is for a model of emotion classes; this one predicts ratings"
    return None


def _answer(r: Any, min_confidence: float | None) -> dict[str, Any]:
    """A dimensional model's ratings (``{"arousal": .., ...}``), or a categorical one's status, label and
    probabilities: below ``min_confidence`` it answers ``"status": "uncertain"`` with no label (probabilities kept)."""
    from emoshift.evaluation.calibration import confident

    if r.values is not None:
        return dict(r.values)
    sure = confident(r.probabilities, min_confidence)
    return {"status": "ok" if sure else "uncertain", "label": r.label if sure else None,
            "probabilities": r.probabilities}


def create_app(run_dir: str | os.PathLike[str], backend: Backend, settings: ServeSettings | None = None) -> FastAPI:
    from emoshift.deploy.audio_stream import bytes_blocks
    from emoshift.deploy.segments import MODES, Segmentation, score

    settings = settings or ServeSettings()
    run = Path(run_dir)
    limit = int(settings.max_upload_mb * 1e6)
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="emoshift-infer")
    gate = _Gate(settings.admitted)
    app = FastAPI(title="emoshift", version="1", summary="Speech emotion recognition: upload audio, get emotions")
    _install_error_handlers(app)
    app.state.gate, app.state.pool = gate, pool

    @app.middleware("http")
    async def api_key(request: Request, call_next: Any) -> Any:
        if settings.api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
                return _error(401, "missing or wrong API key (send it as X-API-Key)")
        return await call_next(request)

    _install_access_log(app)  # outermost: sees 401s and 503s too

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "backend": backend.name, "model": backend.meta.model, "busy": gate.inside}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return _model_info(run, backend)

    @app.get("/v1/model/card", response_class=PlainTextResponse)
    async def card() -> PlainTextResponse:
        return PlainTextResponse(_card(run), media_type="text/markdown; charset=utf-8")

    def infer(data: bytes, mode: str, min_confidence: float | None = None) -> dict[str, Any]:
        blocks, head = bytes_blocks(data)
        if head.duration_s > settings.max_seconds:
            raise AudioError(f"too long: {head.duration_s:.0f} s of audio, the limit is {settings.max_seconds:g} s")
        r = score(backend, blocks, Segmentation(mode=mode, max_seconds=settings.max_seconds,
                                                speech_check=settings.speech_check))
        # a dimensional model answers its ratings ({"arousal": .., "valence": .., ...}), a categorical one its label
        return {**_answer(r, min_confidence), "duration_s": round(r.duration_s, 3),
                "segments": [] if mode == "none" else [s.to_dict() for s in r.segments]}

    @app.post("/v1/predict", responses={400: {}, 408: {}, 413: {}, 415: {}, 422: {}, 503: {}})
    async def predict(request: Request, segments: str = "window", min_confidence: float | None = None) -> JSONResponse:
        """Audio (multipart field ``file``, or a raw audio/* body) -> status, label, probabilities, duration,
        segments; ``min_confidence`` (0-1): below it the answer is ``"status": "uncertain"`` with no label."""
        if (bad := _bad_query(segments, min_confidence, backend, MODES)) is not None:
            return _error(400, bad)
        if not gate.enter():
            return _error(503, "the server is busy: try again shortly", {"Retry-After": str(settings.retry_after_s)})
        try:
            upload = read_upload(request.headers.get("content-type", ""), request.headers.get("content-length"),
                                 request.stream(), limit)
            data = await asyncio.wait_for(upload, timeout=settings.upload_timeout_s)
            result = await asyncio.get_running_loop().run_in_executor(pool, infer, data, segments, min_confidence)
        except (UploadError, AudioError) as e:
            request.state.note = f"({e})"  # the request log says why
            return _error(e.status if isinstance(e, UploadError) else audio_status(e), str(e))
        except TimeoutError:  # a slow or stalled uploader gives its admission slot back
            return _error(408, f"the upload did not arrive within {settings.upload_timeout_s:g} s")
        finally:
            gate.leave()
        request.state.note = _answer_note(result, len(data))
        return JSONResponse(result)

    @app.on_event("shutdown")
    def _stop_pool() -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    return app
