# bananabot: one image for the bot, its workers and the local playground.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BANANABOT_DATA_DIR=/data BANANABOT_WEB_HOST=0.0.0.0 DATABASE_URL=sqlite:////data/bananabot.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 bananabot \
    && mkdir -p /data && chown bananabot /data

USER bananabot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"
ENTRYPOINT ["bananabot"]
CMD ["run"]
