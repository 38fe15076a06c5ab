# bananabot: one image for the bot, its workers and the local playground.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BANANABOT_DATA_DIR=/data BANANABOT_WEB_HOST=0.0.0.0 BANANABOT_SLACK_HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////data/bananabot.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 bananabot \
    && mkdir -p /data && chown bananabot /data

USER bananabot
VOLUME ["/data"]
# 8080: /healthz, /metrics, /media/<token>, /callbacks/runflow, and the playground where no
# chat adapter runs (no login: then publish it to localhost only); 3000: Slack HTTP mode.
EXPOSE 8080 3000
# /healthz answers 503 when the store or the workers fail (urlopen raises on it).
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"
ENTRYPOINT ["bananabot"]
CMD ["run"]
