"""An OpenAI-compatible HTTP server: ``awrs serve`` (FastAPI + uvicorn, the ``server`` extra).

Overview: :func:`create_app` serves one model at ``GET /v1/models``,
``POST /v1/chat/completions`` and ``POST /v1/completions`` (the request fields and the
``num_particles`` / ``method`` / ``regex`` / ``grammar`` / ``constraint`` extensions are
checked by :mod:`awrs_adapters.openai_api`), and ``GET /health``. Every request is a
:class:`~awrs_adapters.scheduler.Call` on the model's
:func:`~awrs_adapters.scheduler.scheduler_for`, so concurrent requests step together and
share each forward; a client that disconnects cancels its particles. Streaming sends a
chunk only once every weighted particle shares it, so nothing is ever retracted. Errors
come in the API's shape (``{"error": {"message", "type", "param", "code"}}``) with 400 /
401 / 404 / 413 / 422 for bad requests; no traceback reaches a client. With an API key
every route but ``/health`` needs ``Authorization: Bearer <key>``; the key is never logged.
Only constraints registered at start (``--constraints mypkg.validators``) can be named by
a request: no request can run code.

Example::

    from awrs_adapters import models
    from awrs_adapters.server import create_app
    import uvicorn
    uvicorn.run(create_app(models.load(), model_name="smollm2-135m-instruct"),
                host="127.0.0.1", port=8000)
    # then: openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-").chat...
"""


import asyncio
import contextlib
import hmac
import importlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .errors import (
    AWRSError,
    ConfigError,
    ConstraintError,
    GenerationTimeoutError,
    NoValidSampleError,
)
from .lm.base import LanguageModel
from .openai_api import (
    APIError,
    Limits,
    Plan,
    chat_response,
    chunk,
    completion_response,
    draws,
    message,
    parse_chat,
    parse_completion,
)
from .results import SMCResult
from .scheduler import Call, scheduler_for

__all__ = ["create_app", "load_registry", "serve"]

_HINT = "the server needs FastAPI and uvicorn: pip install 'awrs-adapters[server]'"
log = logging.getLogger("awrs_adapters.server")


def load_registry(modules: Sequence[str]) -> dict[str, Any]:
    """Constraints a request may name (``"constraint": "<name>"``), from ``modules``.

    Each module's public names (its ``__all__``, else every name not starting with
    ``_``) that are constraints defined there: pydantic classes, ``Predicate`` /
    ``Potential`` / other ``Constraint`` instances. Raises ``ConfigError`` for a module
    that cannot be imported or registers nothing, or a name given twice.
    """
    from pydantic import BaseModel

    from .protocol import Constraint

    out: dict[str, Any] = {}
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception as e:
            raise ConfigError(f"--constraints {name}: cannot import it: {type(e).__name__}: {e}") from e
        names = getattr(mod, "__all__", None) or [k for k in vars(mod) if not k.startswith("_")]
        found = 0
        for k in names:
            obj = getattr(mod, k, None)
            ok = isinstance(obj, Constraint) or (
                isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
                and obj.__module__ == mod.__name__)
            if not ok:
                continue
            if k in out:
                raise ConfigError(f"--constraints: the name {k!r} is registered twice")
            out[k] = obj
            found += 1
        if not found:
            raise ConfigError(f"--constraints {name}: no constraint found (pydantic classes or "
                              "Constraint instances such as Predicate / Potential)")
    return out


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _run_error(e: BaseException) -> APIError:
    """A generation's failure as the API's error (never a traceback)."""
    if isinstance(e, NoValidSampleError):
        return APIError(422, str(e), code="no_valid_sample")
    if isinstance(e, GenerationTimeoutError):
        return APIError(504, str(e), code="timeout", type="server_error")
    if isinstance(e, ConstraintError | ConfigError):
        return APIError(422, str(e), code="constraint_error")
    if isinstance(e, AWRSError):
        return APIError(500, f"{type(e).__name__}: {e}", code="generation_error", type="server_error")
    log.exception("generation failed", exc_info=e)
    return APIError(500, "internal error while generating (logged on the server)",
                    code="internal_error", type="server_error")


def create_app(
    lm: LanguageModel,
    *,
    model_name: str,
    api_key: str | None = None,
    registry: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    max_body_bytes: int = 1_000_000,
) -> Any:
    """The FastAPI application serving ``lm`` as ``model_name`` (see the module docstring)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, StreamingResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from e

    registry = dict(registry or {})
    limits = limits or Limits()
    sched = scheduler_for(lm)
    app = FastAPI(title="awrs-adapters", docs_url=None, redoc_url=None, openapi_url=None)

    def error(e: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError) -> JSONResponse:
        return error(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return error(APIError(e.status_code, f"{request.method} {request.url.path}: {e.detail}",
                              code=code))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("request failed", exc_info=e)
        return error(APIError(500, "internal error (logged on the server)",
                              code="internal_error", type="server_error"))

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def read_json(request: Request) -> Any:
        authorize(request)
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body_bytes:
            raise APIError(413, f"the request body is {size} bytes; the limit is {max_body_bytes}",
                           code="request_too_large")
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > max_body_bytes:
                raise APIError(413, f"the request body passes the {max_body_bytes}-byte limit",
                               code="request_too_large")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None

    async def start(plan: Plan, on_text: Any = None) -> tuple[Call, int]:
        """Submit the plan's call (its constraint compiled off the event loop)."""
        # a live stream answers with one posterior draw: the call sends the rest of it
        call = Call(plan.prompt, plan.constraint, plan.params, stop=plan.stop, on_text=on_text,
                    answer="draw" if on_text is not None else "mode")
        try:
            await asyncio.to_thread(sched.submit, call)
            n_in = await asyncio.to_thread(lm.prompt_length, plan.prompt)
        except (ConfigError, ConstraintError) as e:
            call.cancel()
            raise APIError(400, str(e), code="invalid_value") from None
        return call, n_in

    async def finish(request: Request, call: Call) -> SMCResult:
        """The call's result; cancels it when the client goes away first."""
        fut = asyncio.wrap_future(call.future)
        while True:
            done, _ = await asyncio.wait({fut}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():
                call.cancel()
                raise asyncio.CancelledError
        try:
            res = fut.result()
        except Exception as e:
            raise _run_error(e) from None
        if not res.ok:
            raise _run_error(NoValidSampleError(res.hint or "no particle produced a valid string"))
        return res

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "created": 0, "owned_by": "awrs-adapters"}]}

    async def complete(request: Request, chat: bool) -> Any:
        body = await read_json(request)
        parse = parse_chat if chat else parse_completion
        plan = parse(body, model=model_name, registry=registry, limits=limits)
        if plan.stream:
            return await stream(request, plan, chat)
        call, n_in = await start(plan)
        res = await finish(request, call)
        texts = draws(res, plan.n, plan.params.seed)  # type: ignore[arg-type]
        if chat:
            return chat_response(res, texts, model=model_name, prompt_tokens=n_in, tools=plan.tools)
        return completion_response(res, texts, model=model_name, prompt_tokens=n_in)

    async def stream(request: Request, plan: Plan, chat: bool) -> Any:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[str | None] = asyncio.Queue()
        live = plan.n == 1 and not plan.tools  # text streams as it is committed

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(q.put_nowait, piece)

        call, n_in = await start(plan, on_text if live else None)
        call.future.add_done_callback(lambda _: loop.call_soon_threadsafe(q.put_nowait, None))
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())

        async def events() -> AsyncIterator[str]:
            sent = ""
            try:
                if chat:
                    yield _sse(chunk(rid, model_name, created, {"role": "assistant", "content": ""}))
                while (piece := await q.get()) is not None:
                    sent += piece
                    yield _sse(chunk(rid, model_name, created, {"content": piece}, chat=chat))
                try:
                    res = call.future.result()
                    if not res.ok:
                        raise NoValidSampleError(res.hint or "no particle produced a valid string")
                except Exception as e:  # the stream has begun: the error is its last event
                    yield _sse(_run_error(e).body())
                    yield "data: [DONE]\n\n"
                    return
                texts = ([call.answer_text] if live and call.answer_text is not None
                         else draws(res, plan.n, plan.params.seed))  # type: ignore[arg-type]
                tokens = 0
                for i, text in enumerate(texts):
                    msg, reason = message(text, res, plan.tools)
                    if live:
                        delta: dict[str, Any] = {"content": text[len(sent):]} if text[len(sent):] else {}
                    elif msg.get("tool_calls"):
                        delta = {"tool_calls": [dict(c, index=j) for j, c in enumerate(msg["tool_calls"])]}
                    else:
                        delta = {"content": text}
                    if i and chat:
                        yield _sse(chunk(rid, model_name, created, {"role": "assistant"}, index=i))
                    if delta:
                        yield _sse(chunk(rid, model_name, created, delta, index=i, chat=chat))
                    yield _sse(chunk(rid, model_name, created, {}, reason, index=i, chat=chat))
                    tokens += min((len(p.token_ids) for p in res.particles
                                   if p.finished and p.text == text), default=0)
                if plan.include_usage:
                    usage = {"prompt_tokens": n_in, "completion_tokens": tokens,
                             "total_tokens": n_in + tokens}
                    yield _sse({"id": rid, "object": "chat.completion.chunk" if chat else
                                "text_completion", "created": created, "model": model_name,
                                "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"
            finally:
                if not call.future.done():
                    call.cancel()  # the client went away mid-stream

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            return await complete(request, chat=True)
        return JSONResponse({}, status_code=499)  # the client is gone; nobody reads this

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            return await complete(request, chat=False)
        return JSONResponse({}, status_code=499)

    return app


def serve(
    model: str = "smollm2-135m-instruct",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    constraints: Sequence[str] = (),
    limits: Limits | None = None,
    max_body_bytes: int = 1_000_000,
    lm: LanguageModel | None = None,
) -> None:
    """Load ``model`` and serve it until interrupted (what ``awrs serve`` runs)."""
    try:
        import uvicorn
    except ImportError as e:
        raise ImportError(_HINT) from e
    from . import models

    registry = load_registry(constraints)  # fail before loading the model
    if lm is None:
        lm = models.load(model)
    app = create_app(lm, model_name=model, api_key=api_key, registry=registry, limits=limits,
                     max_body_bytes=max_body_bytes)
    log.warning("serving %s on http://%s:%d/v1 (%s; %d registered constraints)", model, host,
                port, "API key required" if api_key else "no API key", len(registry))
    uvicorn.run(app, host=host, port=port, log_level="warning")
