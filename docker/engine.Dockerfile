# The GPU engine worker (docker-compose.yml's `engine`): the CUDA build of torch plus the engine extra.
# The CUDA runtime comes inside torch's wheels; the NVIDIA container toolkit brings the driver.
# Built from the repository root: docker build -f docker/engine.Dockerfile .
# TORCH_CUDA picks PyTorch's wheel index: cu126 runs on CUDA 12 drivers; cu130 (a CUDA 13 driver)
# adds Blackwell cards.
ARG TORCH_CUDA=cu126

FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS python
ARG TORCH_CUDA
WORKDIR /src
# torch first, from PyTorch's CUDA index. Its version is the engine extra's pin (pyproject.toml;
# tests/deploy checks they agree), so the next step finds `torch==2.13.0` satisfied by 2.13.0+cu126
# and pulls no other torch.
RUN python -m venv /opt/redraft \
 && /opt/redraft/bin/pip install --no-cache-dir --disable-pip-version-check \
      --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==2.13.0+${TORCH_CUDA}"
COPY pyproject.toml README.md ./
COPY redraft/ redraft/
COPY server/ server/
COPY jobs/ jobs/
COPY worker/ worker/
COPY engine/ engine/
COPY training/ training/
COPY kernels/ kernels/
RUN /opt/redraft/bin/pip install --no-cache-dir --disable-pip-version-check ".[engine]" \
 && /opt/redraft/bin/python -c "import torch; assert torch.version.cuda, 'not a CUDA torch: ' + torch.__version__"

FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba
# A home of its own: Triton and torch keep their compiled-kernel caches under ~/.cache and ~/.triton.
RUN groupadd --gid 10001 redraft \
 && useradd --create-home --no-log-init --uid 10001 --gid 10001 redraft
COPY --from=python /opt/redraft /opt/redraft
ENV PATH=/opt/redraft/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /home/redraft
CMD ["redraft", "worker"]
