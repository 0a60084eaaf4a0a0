# The takedown image used by compose.yaml: the package with its templates and data.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . && useradd --create-home takedown
USER takedown
ENV TAKEDOWN_HOME=/home/takedown/data
ENTRYPOINT ["takedown"]
