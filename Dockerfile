# Clara's image for Render's free tier: the bot's locked dependencies only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The locks have hashes; installing them alone first keeps this layer cached across code
# changes. pip itself comes from the lock first, so the image's pip does not decide anything.
COPY requirements/bootstrap.txt requirements/bot.txt requirements/
RUN pip install --require-hashes -r requirements/bootstrap.txt \
    && pip install --require-hashes -r requirements/bot.txt

# Only the bot: gunicorn imports `bot` from the working directory, the toolkit stays out.
COPY gunicorn.conf.py ./
COPY bot ./bot
RUN useradd --create-home --uid 10001 clara  # runs as USER 10001 below

USER 10001
EXPOSE 10000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '10000'), timeout=4)"
# Shell form so ${PORT} expands; exec so gunicorn is PID 1 and receives SIGTERM.
CMD exec gunicorn --config gunicorn.conf.py --bind 0.0.0.0:${PORT:-10000} "bot:create_app()"
