# One image for the API, the workers and the migration job (the command picks the role).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PAWDEX_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src src
RUN pip install --no-cache-dir '.[models,ops]'
VOLUME /data
EXPOSE 8000
CMD ["pawdex", "serve", "--host", "0.0.0.0", "--no-embedded-worker", "--no-migrate"]
