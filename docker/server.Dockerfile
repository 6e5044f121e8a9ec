# The collaboration server and the editor (docker-compose.yml's `server`): the base package only, so
# no torch and no CUDA. Built from the repository root: docker build -f docker/server.Dockerfile .

# The editor's bundle, from web/package-lock.json's exact versions.
FROM node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0 AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN node build.mjs

# The Python package without extras, in a virtualenv that the final stage copies whole.
FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS python
WORKDIR /src
RUN python -m venv /opt/redraft
COPY pyproject.toml README.md ./
COPY redraft/ redraft/
COPY server/ server/
COPY jobs/ jobs/
COPY worker/ worker/
COPY engine/ engine/
COPY training/ training/
COPY kernels/ kernels/
# The build fails if torch ever comes along with a dependency.
RUN /opt/redraft/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && ! /opt/redraft/bin/python -c "import torch" 2>/dev/null

FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba
RUN groupadd --gid 10001 redraft \
 && useradd --create-home --no-log-init --uid 10001 --gid 10001 redraft
COPY --from=python /opt/redraft /opt/redraft
COPY --from=web /src/web/dist /opt/redraft/web
ENV PATH=/opt/redraft/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REDRAFT_WEB_DIR=/opt/redraft/web
USER 10001:10001
WORKDIR /home/redraft
EXPOSE 8000
CMD ["redraft", "serve", "--host", "0.0.0.0", "--port", "8000"]
