# One image for every process kind: API (b40 serve), workers (b40 worker), migrations.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY server ./server
COPY workers ./workers
COPY alerts ./alerts
RUN pip install . && useradd --system --uid 10001 b40
USER b40
EXPOSE 8000
CMD ["b40", "serve", "--host", "0.0.0.0", "--port", "8000"]
