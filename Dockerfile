# Pulse in one container: the public port 8000, the data (SQLite, secret) in the /data volume.
#   docker build -t pulse .
#   docker run -d -p 8000:8000 -v pulse-data:/data --name pulse pulse
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PULSE_DATA_DIR=/data \
    PULSE_HOST=0.0.0.0 \
    PULSE_PORT=8000

RUN groupadd --system --gid 10001 pulse \
    && useradd --system --uid 10001 --gid pulse --home-dir /app --shell /usr/sbin/nologin pulse \
    && mkdir -p /data \
    && chown pulse:pulse /data

WORKDIR /app
COPY pyproject.toml requirements.lock README.md app.py ./
COPY backend ./backend
COPY models ./models
COPY ui ./ui
# The exact versions of requirements.lock (`make lock`), then Pulse itself: a reproducible image.
RUN pip install --no-cache-dir -r requirements.lock .

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PULSE_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["pulse"]
CMD ["serve"]
