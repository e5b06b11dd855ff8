"""`emoshift serve`: the prediction API and its web page on uvicorn (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from emoshift.cli import app
from emoshift.cli._common import console, fail, speech_check


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="run directory of a trained model")],
    host: Annotated[str, typer.Option("--host", help="address to bind; not local needs --api-key")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port to listen on")] = 8000,
    backend: Annotated[str, typer.Option("--backend", help="auto (model.onnx if present) | onnx | torch")] = "auto",
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="largest upload accepted, in MB; larger ones get 413")] = 25.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", min=0.1, help="longest audio accepted")] = 600.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="inference threads (bounded pool)")] = 2,
    queue: Annotated[int | None, typer.Option("--queue", min=0, help="requests waiting beyond the workers "
                                              "(default 4 per worker); more get 503")] = None,
    upload_timeout: Annotated[float, typer.Option("--upload-timeout", min=0.1, help="seconds an upload may take "
                                                  "to arrive; slower ones get 408")] = 60.0,
    api_key: Annotated[str | None, typer.Option("--api-key", help="required on every /v1 request "
                                                "(default: $EMOSHIFT_API_KEY)")] = None,
    vad_check: Annotated[bool | None, typer.Option(
        "--vad-check/--no-vad-check", show_default=False,
        help="answer 422 'no speech' for audio in which Silero VAD finds no speech (default: on when the 'vad' "
        "extra is installed)")] = None,
) -> None:
    """Serve the model: POST /v1/predict, GET /v1/model, GET /healthz, the page at /, OpenAPI at /docs."""
    from emoshift.core.errors import EmoshiftError
    from emoshift.core.extras import needs

    with needs("emoshift serve"):
        import uvicorn

        from emoshift.deploy.serve.app import LOCAL_HOSTS, ServeSettings, create_app
    from emoshift.deploy.backend import open_backend

    check = speech_check(False, vad_check)

    key = api_key or os.environ.get("EMOSHIFT_API_KEY") or None
    if host not in LOCAL_HOSTS and not key:
        fail(f"--host {host} is reachable from other machines: pass --api-key KEY (or set EMOSHIFT_API_KEY)")
    try:
        engine = open_backend(run, backend, threads=1 if workers > 1 else None)
        engine.meta  # noqa: B018  (loads the model now: a broken run fails before the port opens)
    except EmoshiftError as e:
        fail(str(e))
    import logging

    request_log = logging.getLogger("emoshift.serve")  # one line per request (create_app's access_log)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False
    settings = ServeSettings(max_upload_mb=max_upload_mb, max_seconds=max_seconds, workers=workers, queue=queue,
                             api_key=key, speech_check=check, upload_timeout_s=upload_timeout)
    application = create_app(run, engine, settings)
    console.print(f"serving {run} ({engine.meta.model}, {engine.name} backend, {workers} worker(s)) on "
                  f"http://{host}:{port}  (page /, API /v1, docs /docs)", highlight=False, soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
