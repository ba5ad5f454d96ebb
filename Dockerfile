# One image for every component: `eventfleet operator | consumer | gateway | migrate`.
# BASE is any image with Python 3.11 and pip on PATH. The local node builds its own from Debian
# packages (hack/node/images), because it reaches no image registry.
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY cli cli
COPY contract contract
COPY operator operator
COPY consumer consumer
COPY gateway gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM ${BASE}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin eventfleet
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENTRYPOINT ["eventfleet"]
CMD ["--help"]
