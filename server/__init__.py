"""TinyLLM's OpenAI-compatible HTTP server (FastAPI + uvicorn + sse-starlette) on top of ``model.engine``.

Start it with ``tinyllm serve`` or ``python -m server``; build an app in code with
:func:`server.app.create_app`.
"""
