# ticketing: migrate, then serve (with the job worker in-process).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKETING_HOST=0.0.0.0 \
    TICKETING_PORT=8080

WORKDIR /app
# A Unicode font for the names on certificates of attendance; from the base image's Debian
# release, whose security updates a pinned version would keep out.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY ticketing ./ticketing
RUN pip install . \
 && useradd --system --create-home --home-dir /home/ticketing --uid 10001 ticketing \
 && mkdir -p /app/var && chown ticketing:ticketing /app/var

USER 10001
VOLUME ["/app/var"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TICKETING_PORT', '8080'), timeout=4)"]

CMD ["sh", "-c", "ticketing migrate && exec ticketing serve"]
