"""HTTP routes (the app is built in :mod:`server.app`). Thin: each hands the parsed request to its serving class.

``/v1/*`` needs a bearer key (checked by :class:`server.auth.AuthMiddleware`; the dependency below only
declares the scheme in the OpenAPI document). ``/health``, ``/ready`` and ``/metrics`` are open: they carry
no secrets and are what orchestrators and Prometheus poll.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from server.auth import Identity, bearer_scheme, current_identity
from server.errors import APIError, error_response, retry_after_headers
from server.json_body import StrictJSONRoute
from server.protocol import ChatCompletionRequest, CompletionRequest
from server.responses import ChatCompletionResponse, CompletionResponse, ErrorResponse, ModelCard, ModelList

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 500, 503)
}
# One Server-Sent Event (before OpenAPI 3.2, the schema of an event-stream media type describes each event).
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chunk object as JSON, an error object as JSON, or [DONE].",
        },
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
_STREAM = {
    200: {
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        "description": "JSON, or Server-Sent Events when stream is true.",
    }
}

CurrentIdentity = Annotated[Identity, Depends(current_identity)]

router = APIRouter()
# StrictJSONRoute: bodies are parsed by server.json_body (UTF-8 only, no lone surrogates, NUL or duplicate keys).
v1 = APIRouter(
    prefix="/v1", dependencies=[Depends(bearer_scheme)], responses=_ERRORS, route_class=StrictJSONRoute
)


def _state(request: Request) -> Any:
    return request.app.state.tinyllm


def _serving(request: Request, name: str) -> Any:
    serving = getattr(_state(request), name)
    if serving is None:
        raise APIError(
            503,
            "The model is not loaded yet; retry shortly.",
            code="server_unavailable",
            headers=retry_after_headers(5),
        )
    return serving


@v1.post("/chat/completions", response_model=ChatCompletionResponse, responses=_STREAM)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, identity: CurrentIdentity
) -> Response:
    return await _serving(request, "chat").create(body, request, identity)


@v1.post("/completions", response_model=CompletionResponse, responses=_STREAM)
async def create_completion(body: CompletionRequest, request: Request, identity: CurrentIdentity) -> Response:
    return await _serving(request, "completions").create(body, request, identity)


def _model_card(request: Request) -> ModelCard:
    state = _state(request)
    engine = state.engine
    return ModelCard(
        id=state.settings.served_model_name,
        owned_by=state.model_owner,
        max_model_len=engine.max_seq_len if engine is not None else None,
        kv_cache_bytes=engine.kv_cache_bytes if engine is not None else None,
    )


@v1.get("/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[_model_card(request)])


@v1.get("/models/{model_id:path}", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> ModelCard:
    card = _model_card(request)
    if model_id != card.id:
        raise APIError(
            404, f"The model '{model_id[:100]}' does not exist.", code="model_not_found", param="model"
        )
    return card


@router.get("/health", tags=["operations"], responses={503: {"model": ErrorResponse}})
async def health(request: Request) -> Response:
    """Liveness: the process answers and its engine has not died (a dead engine never comes back: restart)."""
    engine = _state(request).engine
    if engine is not None and engine.is_dead:
        return error_response(503, "The engine has stopped; restart the server.", code="engine_dead")
    return JSONResponse({"status": "ok"})


@router.get("/ready", tags=["operations"], responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> Response:
    """Readiness: the model is loaded, the engine runs and the server is not draining."""
    state = _state(request)
    life = state.lifecycle
    if life.ready and not life.draining and state.engine is not None and state.engine.is_running:
        return JSONResponse({"status": "ready", "model": state.settings.served_model_name})
    reason = "draining" if life.draining else "not ready"
    return error_response(
        503, f"The server is {reason}.", code="server_unavailable", headers=retry_after_headers(5)
    )


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition; engine gauges are read at scrape time."""
    state = _state(request)
    if state.engine is not None:
        state.metrics.refresh_engine(state.engine.stats())
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


router.include_router(v1)
