# syntax=docker/dockerfile:1
#
# TinyLLM inference server, CPU only.
#
#   docker build -t tinyllm .
#   docker run --rm -p 8000:8000 -e TINYLLM_API_KEYS=sk-change-me tinyllm
#
# Two stages. "builder" installs torch and the project into a virtual environment; "runtime" starts
# again from the bare base image and copies in only that environment and the shipped checkpoint, so
# pip's working files, the source tree and the tests never reach the image users pull.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# torch first and alone, from the CPU wheel index: PyPI's Linux wheel depends on several GB of CUDA
# libraries a CPU server never loads. Its own layer, so editing the code does not download it again.
# Keep the version equal to the torch pin in pyproject.toml (tests/deploy/test_docker.py checks it).
# Every version is pinned by constraints.txt (scripts/update_constraints.py writes it from a tested
# environment): a rebuild next month installs the same server.
COPY constraints.txt /tmp/constraints.txt
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu -c /tmp/constraints.txt "torch==${TORCH_VERSION}"

# Then the project and its runtime dependencies from PyPI, at the constrained versions. The installed
# "2.13.0+cpu" satisfies the "torch==2.13.0" pin (a local version label is ignored when the pin has none), so pip keeps it.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY reasoning/ reasoning/
COPY server/ server/
COPY training/ training/
COPY tinyllm/ tinyllm/
RUN pip install -c /tmp/constraints.txt .

# The int8 kernels (model/kernels/*.cpp) are compiled here, once, for any AVX2 CPU (-mavx2, not -march=native),
# so the runtime image needs no compiler: TINYLLM_NATIVE_PATH below points the server at the result.
# The build must succeed (the import asserts it); the server itself falls back to fbgemm with a log line
# only where the CPU lacks AVX2. Then torch's C++ headers and its own test binaries (about 150 MB), which
# only building extensions and testing torch need, are dropped.
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/* \
 && TORCH_EXTENSIONS_DIR=/tmp/kernels python -c "from model.native import load_kernel; assert load_kernel()" \
 && mkdir -p /opt/venv/kernels && cp /tmp/kernels/tinyllm_native/tinyllm_native.so /opt/venv/kernels/ \
 && rm -rf /tmp/kernels /opt/venv/lib/python3*/site-packages/torch/include /opt/venv/lib/python3*/site-packages/torch/test


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="TinyLLM" \
      org.opencontainers.image.description="OpenAI-compatible inference server for a small Llama-family model, CPU only"

# A fixed numeric id, so orchestrators that require a non-root user (runAsNonRoot) can verify it.
RUN groupadd --system --gid 10001 tinyllm \
 && useradd --system --uid 10001 --gid tinyllm --create-home --home-dir /home/tinyllm \
            --shell /usr/sbin/nologin tinyllm

COPY --from=builder /opt/venv /opt/venv

# Owned by root and read-only for the server: nothing at run time needs to write a checkpoint.
WORKDIR /app
COPY checkpoints/tinyllm-default/ /app/checkpoints/tinyllm-default/

# The settings default for TINYLLM_MODEL points next to the installed package, which inside the image
# is site-packages; name the checkpoint's real place instead. Listen on all interfaces: the port is
# only reachable from outside through the port the user publishes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TINYLLM_HOST=0.0.0.0 \
    TINYLLM_PORT=8000 \
    TINYLLM_MODEL=/app/checkpoints/tinyllm-default \
    TINYLLM_NATIVE_PATH=/opt/venv/kernels/tinyllm_native.so

USER 10001:10001

EXPOSE 8000

# /ready answers 200 once the checkpoint is loaded and the engine runs, 503 before that and while
# draining. The slim image has no curl, so Python's urllib asks; any error or non-2xx exits non-zero.
# start-period covers loading and quantizing the model on a slow CPU.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TINYLLM_PORT', '8000') + '/ready', timeout=4)"]

CMD ["tinyllm", "serve"]
