# review-agent in a container: `docker compose run --rm app review https://github.com/OWNER/REPO/pull/N`
# (docker-compose.yml wires it to Postgres + pgvector and Redis). The image holds only the package;
# state lives in the database, so containers are disposable and a rerun resumes.

# 3.11: the floor of pyproject.toml's requires-python (>=3.11), so the image also proves the
# package still runs on the oldest Python it claims (tests/test_config_files.py checks the two agree).
FROM python:3.11-slim

# git: local reviews (`review /work --base main`) read the repository with git. safe.directory:
# a repository mounted from the host belongs to another uid, which git refuses by default.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the build needs (pyproject.toml names README.md as the readme and packages
# review_agent*), so that editing tests or docs does not invalidate the install layer.
WORKDIR /opt/review-agent
COPY pyproject.toml README.md ./
COPY review_agent ./review_agent
RUN pip install . && review-agent --version

# Not root: a code reviewer needs to read code, nothing more. REVIEW_AGENT_HOME is where the
# SQLite default would live if DATABASE_URL is unset (compose sets it to Postgres).
RUN useradd --create-home --uid 1000 reviewer
USER reviewer
ENV REVIEW_AGENT_HOME=/home/reviewer/.local/share/review-agent
WORKDIR /work

ENTRYPOINT ["review-agent"]
CMD ["--help"]
